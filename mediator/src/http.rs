//! The HTTP API (axum): health, readiness, Prometheus metrics and the exporters.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | `200 ok` while the process serves requests |
//! | `GET /readyz` | `200` when every sink is ready, else `503`; the body lists each sink |
//! | `GET /metrics` | Prometheus text exposition format 0.0.4 |
//! | `GET /api/v1/exporters` | every exporter with its counters and templates (JSON) |
//! | `GET /api/v1/summary` | the dashboard's summary ([`crate::dashboard::summary::Summary`]), with a dashboard |
//! | `GET /dashboard` | the NOC page ([`crate::dashboard::PAGE`]), with a dashboard; `/` redirects to it |
//!
//! The API binds 127.0.0.1 by default. Any other address requires a token (`http.token`), and
//! then every route but `/healthz` and `/readyz` (which tell nothing about the traffic) asks for
//! `Authorization: Bearer <token>`. The page itself (`/dashboard`) holds no data and is served
//! without it; it reads the token from its URL fragment (`/dashboard#token=...`, never sent to the
//! server) and sends it with each request for the summary. The process that embeds the API supplies what it shows through
//! [`ApiState`]: this crate knows nothing about the collector.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Configuration of the HTTP API (`[http]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address. Default `"127.0.0.1:8080"`. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Bearer token required by `/metrics` and `/api/*` (`Authorization: Bearer <token>`).
    /// Mandatory when `listen` is not a loopback address. Default empty (no token).
    pub token: String,
    /// Serve the API at all. Default `true`.
    pub enabled: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            token: String::new(),
            enabled: true,
        }
    }
}

/// Errors of the HTTP API.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The configuration is unsafe or invalid.
    #[error("http.{key}: {reason}")]
    Config {
        /// Which key.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// Binding the listen address failed.
    #[error("binding the HTTP API to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl HttpConfig {
    /// Refuses a non-loopback bind without a token.
    pub fn validate(&self) -> Result<(), HttpError> {
        if self.enabled && !self.listen.ip().is_loopback() && self.token.trim().is_empty() {
            return Err(HttpError::Config {
                key: "token",
                reason: format!(
                    "listen = \"{}\" is not a loopback address, so a token is required \
                     (set http.token or SNF__HTTP__TOKEN)",
                    self.listen
                ),
            });
        }
        if !self.token.is_empty() && self.token.len() < 16 {
            return Err(HttpError::Config {
                key: "token",
                reason: "use at least 16 characters".into(),
            });
        }
        Ok(())
    }

    /// Validates and binds (synchronously, so the caller learns the port before serving).
    pub fn bind(&self) -> Result<std::net::TcpListener, HttpError> {
        self.validate()?;
        let l = std::net::TcpListener::bind(self.listen).map_err(|source| HttpError::Bind {
            addr: self.listen,
            source,
        })?;
        l.set_nonblocking(true).map_err(|source| HttpError::Bind {
            addr: self.listen,
            source,
        })?;
        Ok(l)
    }
}

/// A sink's readiness, for `/readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct SinkReadiness {
    /// The sink's name.
    pub sink: String,
    /// Ready to deliver.
    pub ready: bool,
}

type ExportersFn = dyn Fn() -> serde_json::Value + Send + Sync;
type ReadyFn = dyn Fn() -> Vec<SinkReadiness> + Send + Sync;
type RefreshFn = dyn Fn() + Send + Sync;
/// Builds the dashboard's summary (`/api/v1/summary`).
pub type SummaryFn = dyn Fn() -> crate::dashboard::summary::Summary + Send + Sync;

/// What the API shows, supplied by the embedding process.
#[derive(Clone)]
pub struct ApiState {
    /// The body of `/api/v1/exporters`.
    pub exporters: Arc<ExportersFn>,
    /// Readiness of every sink.
    pub ready: Arc<ReadyFn>,
    /// Records the current metric values through the `metrics` facade (`counter!(..).absolute`,
    /// `gauge!(..).set`); run against this API's own recorder just before each scrape.
    pub refresh_metrics: Arc<RefreshFn>,
}

#[derive(Clone)]
struct Inner {
    api: ApiState,
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    token: Arc<str>,
    summary: Option<Arc<SummaryFn>>,
}

/// The API's own Prometheus recorder (not installed globally, so several instances can live in one
/// process, e.g. in tests). `describe` registers HELP texts; call it once.
pub fn recorder(describe: impl FnOnce()) -> (Arc<PrometheusRecorder>, PrometheusHandle) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, describe);
    (Arc::new(recorder), handle)
}

/// The router, for serving or for tests.
pub fn router(cfg: &HttpConfig, api: ApiState, describe: impl FnOnce()) -> Router {
    router_with_dashboard(cfg, api, None, describe)
}

/// The router with the dashboard (`/dashboard`, `/`, `/api/v1/summary`) when `summary` is given.
pub fn router_with_dashboard(
    cfg: &HttpConfig,
    api: ApiState,
    summary: Option<Arc<SummaryFn>>,
    describe: impl FnOnce(),
) -> Router {
    let (recorder, handle) = recorder(describe);
    let dashboard = summary.is_some();
    let inner = Inner {
        api,
        recorder,
        handle,
        token: Arc::from(cfg.token.as_str()),
        summary,
    };
    let mut protected = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/api/v1/exporters", get(exporters));
    if dashboard {
        protected = protected.route("/api/v1/summary", get(summary_json));
    }
    let protected =
        protected.route_layer(middleware::from_fn_with_state(inner.clone(), require_token));
    let mut open = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz));
    if dashboard {
        open = open
            .route("/dashboard", get(dashboard_page))
            .route("/", get(|| async { Redirect::to("/dashboard") }));
    }
    open.merge(protected).with_state(inner)
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let l = tokio::net::TcpListener::from_std(listener)?;
    axum::serve(l, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn require_token(State(s): State<Inner>, req: Request, next: Next) -> Response {
    if s.token.is_empty() {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), s.token.as_bytes()) {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required\n",
        )
            .into_response()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn readyz(State(s): State<Inner>) -> Response {
    let sinks = (s.api.ready)();
    let all = sinks.iter().all(|r| r.ready);
    let code = if all {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(serde_json::json!({ "ready": all, "sinks": sinks })),
    )
        .into_response()
}

async fn metrics_text(State(s): State<Inner>) -> Response {
    let refresh = s.api.refresh_metrics.clone();
    metrics::with_local_recorder(s.recorder.as_ref(), || refresh());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.handle.render(),
    )
        .into_response()
}

async fn exporters(State(s): State<Inner>) -> Json<serde_json::Value> {
    Json((s.api.exporters)())
}

async fn summary_json(State(s): State<Inner>) -> Response {
    match &s.summary {
        Some(f) => ([(header::CACHE_CONTROL, "no-store")], Json(f())).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn dashboard_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            // Everything is inline; the page talks to this server only.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
                 frame-ancestors 'none'",
            ),
        ],
        crate::dashboard::PAGE,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_a_token() {
        let mut c = HttpConfig {
            listen: "0.0.0.0:8080".parse().expect("addr"),
            ..HttpConfig::default()
        };
        let e = c.validate().expect_err("must refuse").to_string();
        assert!(e.contains("http.token"), "{e}");
        c.token = "0123456789abcdef".into();
        c.validate().expect("token set");
        c.token = "short".into();
        assert!(c.validate().is_err());
        HttpConfig::default().validate().expect("loopback default");
    }

    /// A plain GET: (status, head, body).
    fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
        )
        .expect("write");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read");
        let (head, body) = text.split_once("\r\n\r\n").expect("response");
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status");
        (code, head.to_ascii_lowercase(), body.to_string())
    }

    fn serving(router: Router, cfg: &HttpConfig) -> (SocketAddr, impl FnOnce()) {
        let listener = cfg.bind().expect("bind");
        let addr = listener.local_addr().expect("addr");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let t = std::thread::spawn(move || {
            rt.block_on(serve(listener, router, async move {
                let _ = rx.await;
            }))
        });
        (addr, move || {
            let _ = tx.send(());
            let _ = t.join();
        })
    }

    fn api() -> ApiState {
        ApiState {
            exporters: Arc::new(|| serde_json::json!({})),
            ready: Arc::new(Vec::new),
            refresh_metrics: Arc::new(|| {}),
        }
    }

    #[test]
    fn the_dashboard_page_is_open_and_its_summary_needs_the_token() {
        let token = "0123456789abcdef-test";
        let cfg = HttpConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            token: token.into(),
            enabled: true,
        };
        let (dash, _lane) =
            crate::dashboard::Dashboard::new(&crate::dashboard::DashboardConfig::default(), None);
        let summary: Arc<SummaryFn> = Arc::new(move || dash.summary(None));
        let (addr, stop) = serving(
            router_with_dashboard(&cfg, api(), Some(summary), || {}),
            &cfg,
        );

        let (code, head, body) = get(addr, "/dashboard", None);
        assert_eq!(code, 200);
        assert!(head.contains("content-type: text/html"), "{head}");
        assert!(head.contains("content-security-policy"), "{head}");
        assert!(body.contains("<title>Super-NetFlow"), "{body}");
        let (code, head, _) = get(addr, "/", None);
        assert!((300..400).contains(&code), "{code}");
        assert!(head.contains("location: /dashboard"), "{head}");
        assert_eq!(get(addr, "/api/v1/summary", None).0, 401);
        assert_eq!(
            get(addr, "/api/v1/summary", Some("wrong-token-000000")).0,
            401
        );
        let (code, _, body) = get(addr, "/api/v1/summary", Some(token));
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&body).expect("summary JSON");
        assert_eq!(v["version"], 1);
        assert_eq!(v["totals"]["super_flows"], 0);
        stop();

        // Without a dashboard, none of its routes exist.
        let cfg = HttpConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..HttpConfig::default()
        };
        let (addr, stop) = serving(router(&cfg, api(), || {}), &cfg);
        assert_eq!(get(addr, "/dashboard", None).0, 404);
        assert_eq!(get(addr, "/api/v1/summary", None).0, 404);
        assert_eq!(get(addr, "/healthz", None).0, 200);
        stop();
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
