//! Who may change what the server serves (`/v2/repository/*`): with an
//! admin token, only a client that sends it as `Authorization: Bearer …`;
//! without one, only clients on the same machine (loopback).

use super::error::ApiError;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;

/// The credential management calls need.
#[derive(Clone, Default)]
pub struct AdminToken(Option<[u8; 32]>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token, not even its digest.
        f.write_str(if self.0.is_some() {
            "AdminToken(set)"
        } else {
            "AdminToken(none)"
        })
    }
}

impl AdminToken {
    /// No token: management from loopback clients only.
    pub fn none() -> Self {
        AdminToken(None)
    }

    /// Requires `token` (not empty).
    pub fn new(token: &str) -> Result<Self, String> {
        let token = token.trim();
        if token.is_empty() {
            return Err("the admin token is empty; set a secret or leave it unset".into());
        }
        Ok(AdminToken(Some(Sha256::digest(token.as_bytes()).into())))
    }

    /// Whether a token is required.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Compares digests, so the time taken says nothing about how much of
    /// a guess was right, nor about the token's length.
    fn accepts(&self, offered: &str) -> bool {
        let Some(expected) = &self.0 else {
            return false;
        };
        let offered: [u8; 32] = Sha256::digest(offered.as_bytes()).into();
        let difference = expected
            .iter()
            .zip(offered.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

/// Why a management call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or the wrong one (401; gRPC `UNAUTHENTICATED`).
    Unauthenticated(String),
    /// No token is set and the client is not on this machine (403; gRPC
    /// `PERMISSION_DENIED`).
    Forbidden(String),
}

impl AdminToken {
    /// Whether a management call may go on, whatever its transport:
    /// `authorization` is the `Authorization` header or metadata value,
    /// `from_loopback` whether the client is on this machine.
    pub fn admit(&self, authorization: Option<&str>, from_loopback: bool) -> Result<(), Refusal> {
        if self.is_set() {
            let offered = authorization.and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
            return match offered {
                Some(offered) if self.accepts(offered.trim()) => Ok(()),
                Some(_) => Err(Refusal::Unauthenticated(
                    "the admin token in `Authorization: Bearer …` is wrong".into(),
                )),
                None => Err(Refusal::Unauthenticated(
                    "this management call needs the admin token as `Authorization: Bearer TOKEN`"
                        .into(),
                )),
            };
        }
        if from_loopback {
            Ok(())
        } else {
            Err(Refusal::Forbidden(
                "management calls are accepted only from this machine while no admin token is set; \
                 start the server with --admin-token (or AIMASS_ADMIN_TOKEN, or --admin-token-file) \
                 and send it as `Authorization: Bearer TOKEN`"
                    .into(),
            ))
        }
    }
}

/// Lets a management call through, or answers 401 / 403 naming the fix.
pub async fn require_admin(
    State(token): State<AdminToken>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let from_loopback = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(addr)| addr.ip().is_loopback());
    match token.admit(authorization, from_loopback) {
        Ok(()) => Ok(next.run(request).await),
        Err(Refusal::Unauthenticated(message)) => Err(ApiError::Unauthorized(message)),
        Err(Refusal::Forbidden(message)) => Err(ApiError::Forbidden(message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{Limits, ServerState, router};
    use axum::body::Body;
    use std::sync::Arc;
    use tower::ServiceExt;

    /// A management call from `client` to a server with `token`: its status
    /// and body.
    async fn manage(token: AdminToken, client: [u8; 4]) -> (u16, String) {
        let state = Arc::new(ServerState::new(
            "aimass.toml".into(),
            Limits::default(),
            token,
        ));
        let mut request = axum::http::Request::post("/v2/repository/index")
            .body(Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((client, 40_000))));
        let response = router(state, true).oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn without_a_token_only_loopback_clients_may_manage() {
        let (status, body) = manage(AdminToken::none(), [10, 1, 2, 3]).await;
        assert_eq!(status, 403);
        assert!(body.contains("--admin-token"), "{body}");
        // From loopback the call reaches its handler.
        assert_eq!(manage(AdminToken::none(), [127, 0, 0, 1]).await.0, 200);
        // With a token, the address does not matter, the token does.
        let token = AdminToken::new("t").unwrap();
        assert_eq!(manage(token.clone(), [127, 0, 0, 1]).await.0, 401);
    }

    #[test]
    fn only_the_exact_token_is_accepted() {
        let token = AdminToken::new(" s3cret\n").expect("token");
        assert!(token.accepts("s3cret"));
        assert!(!token.accepts("s3cre"));
        assert!(!token.accepts("s3cret2"));
        assert!(!token.accepts(""));
        assert!(!AdminToken::none().accepts("anything"));
        assert!(AdminToken::new("  ").is_err());
        assert_eq!(format!("{token:?}"), "AdminToken(set)");
    }
}
