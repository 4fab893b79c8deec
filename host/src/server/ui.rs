//! The web page (`GET /`, `/ui`, `/ui/models/{m}`): built into the binary,
//! no network at run time. The structure of a model comes from
//! `/v2/ui/graph/{m}`, the model list from `/v2/ui/models`; the live
//! figures the page computes from `/metrics`, the counters the server
//! keeps anyway. Open like `/metrics`; `--ui off` leaves all of it out.

use super::error::ApiError;
use super::handlers::{ModelPath, Shared};
use super::state::ServerState;
use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;

const PAGE: &str = include_str!("../../ui/index.html");
const APP: &str = include_str!("../../ui/app.js");
const METRICS: &str = include_str!("../../ui/metrics.js");
const CHARTS: &str = include_str!("../../ui/charts.js");
const STYLE: &str = include_str!("../../ui/app.css");
/// cytoscape 3.34.4 (MIT), vendored: see `host/ui/vendor/cytoscape/`.
const CYTOSCAPE: &str = include_str!("../../ui/vendor/cytoscape/cytoscape.min.js");

/// The page's routes.
pub fn routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/", get(page))
        .route("/ui", get(page))
        .route("/ui/models/{model}", get(page))
        .route("/ui/assets/{file}", get(asset))
        .route("/v2/ui/models", get(models))
        .route("/v2/ui/graph/{model}", get(graph))
        .layer(axum::middleware::from_fn(locked_down))
}

/// What the page may do, whatever text it shows: script and style only
/// from the page's own assets (no inline script, so a name that gets into
/// markup cannot run), data only from this server, never framed. The one
/// inline style admitted, by its hash, is the rule cytoscape injects:
/// `.__________cytoscape_container { position: relative; }`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'sha256-pgvDUBa4IjFA2yuSJ2cqcyxmNYJMborsd0ORcRv9vw8='; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

async fn locked_down(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (body, kind) = match file.as_str() {
        "app.js" => (APP, "text/javascript; charset=utf-8"),
        "metrics.js" => (METRICS, "text/javascript; charset=utf-8"),
        "charts.js" => (CHARTS, "text/javascript; charset=utf-8"),
        "app.css" => (STYLE, "text/css; charset=utf-8"),
        "cytoscape.min.js" => (CYTOSCAPE, "text/javascript; charset=utf-8"),
        _ => return Err(ApiError::NotFound(format!("no asset `{file}`"))),
    };
    Ok(([(header::CONTENT_TYPE, kind)], body).into_response())
}

/// Every model known, with its version and state.
async fn models(axum::extract::State(state): Shared) -> axum::Json<Value> {
    axum::Json(json!({ "models": state.service.index(false) }))
}

/// The tree of uses under a model (see [`crate::graph::describe`]), from
/// the config file as it is now.
async fn graph(
    axum::extract::State(state): Shared,
    path: ModelPath,
) -> Result<axum::Json<Value>, ApiError> {
    let file = crate::config::ConfigFile::load(state.service.config())
        .map_err(|e| ApiError::Unavailable(format!("the config cannot be read: {e}")))?;
    crate::graph::describe(&file, &path.model)
        .map(axum::Json)
        .ok_or_else(|| ApiError::NotFound(format!("unknown model `{}`", path.model)))
}

#[cfg(test)]
mod tests {
    use crate::server::{AdminToken, Limits, ServerState, router};
    use axum::body::Body;
    use std::sync::Arc;
    use tower::ServiceExt;

    async fn get(ui: bool, path: &str) -> axum::response::Response {
        let state = Arc::new(ServerState::new(
            "aimass.toml".into(),
            Limits::default(),
            AdminToken::none(),
        ));
        let request = axum::http::Request::get(path).body(Body::empty()).unwrap();
        router(state, ui).oneshot(request).await.unwrap()
    }

    async fn status(ui: bool, path: &str) -> u16 {
        get(ui, path).await.status().as_u16()
    }

    #[tokio::test]
    async fn the_page_and_its_assets_forbid_inline_script() {
        for path in ["/ui", "/ui/models/x", "/ui/assets/app.js", "/v2/ui/models"] {
            let response = get(true, path).await;
            let policy = response.headers()["content-security-policy"]
                .to_str()
                .unwrap();
            assert!(policy.contains("script-src 'self';"), "{path}: {policy}");
            assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
            assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        }
        // The hash admitted is of the one rule cytoscape injects: a new
        // cytoscape that injects another must change the policy with it.
        assert!(super::CYTOSCAPE.contains(r#"u.textContent="."+s+" { position: relative; }""#));
        assert!(super::CYTOSCAPE.contains(r#"s="__________cytoscape_container""#));
    }

    #[test]
    fn the_page_has_no_inline_script_or_markup_from_data() {
        assert!(!super::PAGE.contains("<style"));
        assert!(
            super::PAGE.matches("<script").count() == super::PAGE.matches("<script src=").count()
        );
        for script in [super::APP, super::METRICS, super::CHARTS] {
            assert!(!script.contains("innerHTML"));
        }
    }

    #[tokio::test]
    async fn the_page_is_served_unless_turned_off() {
        for path in ["/", "/ui", "/ui/models/digits", "/ui/assets/app.js"] {
            assert_eq!(status(true, path).await, 200, "{path}");
            assert_eq!(status(false, path).await, 404, "{path} with --ui off");
        }
        assert_eq!(status(true, "/ui/assets/other.js").await, 404);
    }
}
