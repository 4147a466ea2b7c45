//! `docker-compose.yml` and `Dockerfile` checked against what they refer to — no container engine
//! runs here, so this is what keeps them honest: the three services, the files the image build
//! copies, the ports against the default configuration, every `SNF__` variable against a real
//! configuration key (`run --print-config` with it set), the commands' flags against the
//! binary's own `--help`, and the tap's capabilities (exactly BPF, PERFMON, NET_ADMIN, nothing
//! privileged) — and validated against the Compose Specification's JSON Schema.
//!
//! The schema is the one the `check-jsonschema` package (PyPI, a maintained JSON Schema CLI)
//! vendors and keeps current (`check_jsonschema/builtin_schemas/vendor/compose-spec.json`, the
//! Compose Specification's `compose-spec.json`, draft 2020-12). `scripts/test.sh` installs it
//! into `~/.cache/supernetflow/compose-spec` (override: `SNF_COMPOSE_SCHEMA=FILE`), and Python's
//! `jsonschema` validates with it (the validator the schema's `$schema` names). The YAML is read
//! here (serde_norway) and handed over as JSON. A mutated copy of the file must fail.

mod procs;

use procs::bin;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose file");
    serde_norway::from_str(&text).expect("compose YAML")
}

/// Where `scripts/test.sh` puts the schema, or `$SNF_COMPOSE_SCHEMA`.
fn schema_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SNF_COMPOSE_SCHEMA").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    Path::new(&home)
        .join(".cache/supernetflow/compose-spec")
        .join("check_jsonschema/builtin_schemas/vendor/compose-spec.json")
}

/// Validates a document against a JSON Schema with Python's `jsonschema`, using the draft the
/// schema declares (the schema itself is checked first). Prints the validator on stderr.
const VALIDATE_PY: &str = r#"
import json, sys
from jsonschema import validators
schema = json.load(open(sys.argv[1]))
doc = json.load(sys.stdin)
cls = validators.validator_for(schema)
cls.check_schema(schema)
errors = sorted(cls(schema).iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
for e in errors:
    print("/".join(str(p) for p in e.absolute_path) or "(root)", "--", e.message)
from importlib.metadata import version
print("jsonschema", version("jsonschema"), cls.__name__, file=sys.stderr)
"#;

/// The schema errors of `doc` (empty: valid), or `None` with a SKIPPED line when the schema or
/// the validator is not installed.
fn schema_errors(test: &str, doc: &Value) -> Option<Vec<String>> {
    let schema = schema_path();
    if !schema.is_file() {
        procs::skip(
            test,
            &format!(
                "the Compose Specification schema is not at {} (scripts/test.sh installs it: \
                 pip install --no-deps --target ~/.cache/supernetflow/compose-spec \
                 check-jsonschema==0.39.0)",
                schema.display()
            ),
        );
        return None;
    }
    // scripts/test.sh installs jsonschema here when python3 has none of its own.
    let home = std::env::var_os("HOME").unwrap_or_default();
    let mut pythonpath = vec![Path::new(&home).join(".cache/supernetflow/jsonschema")];
    if let Some(p) = std::env::var_os("PYTHONPATH") {
        pythonpath.extend(std::env::split_paths(&p));
    }
    let mut child = match Command::new("python3")
        .arg("-c")
        .arg(VALIDATE_PY)
        .arg(&schema)
        .env(
            "PYTHONPATH",
            std::env::join_paths(pythonpath).expect("PYTHONPATH"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            procs::skip(test, &format!("python3 does not start: {e}"));
            return None;
        }
    };
    let input = serde_json::to_vec(doc).expect("JSON");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("write the document");
    let out = child.wait_with_output().expect("python3");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        if stderr.contains("No module named 'jsonschema'") {
            procs::skip(
                test,
                "Python's jsonschema is not installed (scripts/test.sh installs it: pip install \
                 --target ~/.cache/supernetflow/jsonschema jsonschema)",
            );
            return None;
        }
        panic!("the validator failed: {stderr}");
    }
    eprintln!(
        "{test}: validated by {} against {}",
        stderr.trim(),
        schema.display()
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

#[test]
fn compose_file_is_valid_against_the_compose_specification_schema() {
    const T: &str = "compose_file_is_valid_against_the_compose_specification_schema";
    let Some(errors) = schema_errors(T, &compose()) else {
        return;
    };
    assert!(
        errors.is_empty(),
        "docker-compose.yml does not follow the Compose Specification:\n{}",
        errors.join("\n")
    );
}

#[test]
fn a_broken_compose_file_fails_the_schema() {
    const T: &str = "a_broken_compose_file_fails_the_schema";
    // Each mutation of a copy, and a word its error must name.
    type Mutation = (&'static str, fn(&mut Value), &'static str);
    let mutations: [Mutation; 4] = [
        (
            "a misspelt service key",
            |c| {
                c["services"]["supernetflow"]["comand"] =
                    c["services"]["supernetflow"]["command"].take()
            },
            "comand",
        ),
        (
            "capabilities as a string, not a list",
            |c| c["services"]["probe"]["cap_add"] = Value::from("BPF"),
            "cap_add",
        ),
        (
            "a port mapping that is neither a string, a number nor a mapping",
            |c| c["services"]["supernetflow"]["ports"][0] = Value::from(true),
            "ports",
        ),
        (
            "an unknown top-level section",
            |c| c["servicez"] = serde_json::json!({}),
            "servicez",
        ),
    ];
    for (what, mutate, word) in mutations {
        let mut c = compose();
        mutate(&mut c);
        let Some(errors) = schema_errors(T, &c) else {
            return;
        };
        assert!(
            errors.iter().any(|e| e.contains(word)),
            "{what}: the schema must refuse it, naming {word}; errors: {errors:?}"
        );
    }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_services_files_ports_env_and_capabilities_hold() {
    let c = compose();
    let services = c["services"].as_object().expect("services");
    for s in ["kafka", "supernetflow", "probe"] {
        assert!(services.contains_key(s), "service {s} missing");
    }
    // Kafka: the official image, KRaft (no ZooKeeper).
    let kafka = &services["kafka"];
    assert!(kafka["image"]
        .as_str()
        .unwrap_or("")
        .starts_with("apache/kafka:"));
    let env = kafka["environment"].as_object().expect("kafka env");
    assert!(env["KAFKA_PROCESS_ROLES"]
        .as_str()
        .unwrap_or("")
        .contains("controller"));
    assert!(!env.keys().any(|k| k.contains("ZOOKEEPER")));

    // The image: Dockerfile present, multi-stage, clang-19, and every COPY source exists.
    let snf = &services["supernetflow"];
    assert_eq!(snf["build"], ".");
    let docker = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    assert!(docker.matches("\nFROM ").count() + usize::from(docker.starts_with("FROM ")) >= 2);
    assert!(docker.contains("clang-19"));
    for line in docker
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let src = line.split_whitespace().nth(1).unwrap_or("");
        assert!(
            root().join(src).exists(),
            "Dockerfile copies {src}, which does not exist"
        );
    }

    // Ports: the published ones are the default listeners.
    let cfg = Command::new(bin())
        .args(["run", "--print-config"])
        .output()
        .expect("run");
    let printed = String::from_utf8_lossy(&cfg.stdout).to_string();
    for p in strs(&snf["ports"]) {
        let (port, proto) = p
            .rsplit_once(':')
            .map(|(_, x)| x.split_once('/').unwrap_or((x, "tcp")))
            .expect("port");
        let listened = match proto {
            "udp" => printed.contains(&format!(":{port}\"")) && printed.contains("udp_listen"),
            _ => printed.contains(&format!(":{port}\"")),
        };
        assert!(listened, "port {p} is not a default listener:\n{printed}");
    }

    // Every SNF__ variable is a configuration key run accepts (an unknown key stops start-up).
    let mut cmd = Command::new(bin());
    cmd.args(["run", "--print-config"]);
    for (k, v) in snf["environment"].as_object().expect("env") {
        assert!(k.starts_with("SNF__"), "{k}");
        let value = if k.ends_with("TOKEN") {
            "0123456789abcdef0123".to_string()
        } else {
            v.as_str().unwrap_or("").to_string()
        };
        cmd.env(k, value);
    }
    let out = cmd.output().expect("run --print-config");
    assert!(
        out.status.success(),
        "the compose environment is refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every flag in the commands exists.
    for (svc, sub) in [("supernetflow", "run"), ("probe", "probe")] {
        let help = Command::new(bin())
            .args([sub, "--help"])
            .output()
            .expect("help");
        let help = String::from_utf8_lossy(&help.stdout).to_string();
        for a in strs(&services[svc]["command"])
            .iter()
            .filter(|a| a.starts_with("--"))
        {
            assert!(help.contains(a.as_str()), "{svc}: {sub} has no flag {a}");
        }
    }

    // The tap: host network, exactly the capabilities it needs, never privileged.
    let probe = &services["probe"];
    assert_eq!(probe["network_mode"], "host");
    assert_eq!(strs(&probe["cap_drop"]), ["ALL"]);
    let mut caps = strs(&probe["cap_add"]);
    caps.sort();
    assert_eq!(caps, ["BPF", "NET_ADMIN", "PERFMON"]);
    assert!(probe.get("privileged").is_none_or(|p| p == false));
    let cmdline = strs(&probe["command"]).join(" ");
    assert!(
        cmdline.contains("${SNF_MIRROR_IF"),
        "mirror interface from the environment"
    );
}
