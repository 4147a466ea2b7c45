//! `docker-compose.yml` and `Dockerfile` checked against what they refer to — no container engine
//! runs here, so this is what keeps them honest: the three services, the files the image build
//! copies, the ports against the default configuration, every `SNF__` variable against a real
//! configuration key (`run --print-config` with it set), the commands' flags against the
//! binary's own `--help`, and the tap's capabilities (exactly BPF, PERFMON, NET_ADMIN, nothing
//! privileged). Not done: validation against the Compose Specification's JSON Schema (not
//! available offline here).

mod procs;

use procs::bin;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose file");
    serde_norway::from_str(&text).expect("compose YAML")
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
