//! Security findings of issue #16 on the dev server itself, through the real
//! `medkit serve` binary (loopback only).

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method as M;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::common::send;
use crate::realtime::{Ctx, Ws, demo_token, next_frame};

/// Waits (bounded) for the server to close a socket: a close frame, or the
/// stream's end. False if it is still open after `wait`.
async fn closed_within(ws: &mut Ws, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Finding 5: a socket stayed open and receiving for 2 hours whatever its
/// token's `exp`. The server now closes it when the token expires.
#[tokio::test]
async fn a_socket_closes_when_its_token_expires() {
    let ctx = Ctx::start(&[]);
    let mut ws = ctx
        .connect(&ctx.client_id, &demo_token(&ctx, 3))
        .await
        .expect("a token valid for 3 s connects");
    let caster = ctx.token("broadcaster", "1001", Some("1001")).await;
    let (s, _) = ctx
        .post(
            "broadcast",
            &caster,
            json!({"target": "broadcast", "event": "e"}),
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        next_frame(&mut ws, Duration::from_secs(5)).await.is_some(),
        "delivered while valid"
    );
    assert!(
        closed_within(&mut ws, Duration::from_secs(10)).await,
        "closed at exp"
    );
}

/// Finding 5: `DELETE pin` left the sockets of the revoked PIN tokens open.
/// In process, and through the Management API's `DeleteConnection` with the
/// AWS SDK (`--fanout api`: what the auth function does in AWS).
#[tokio::test]
async fn revoking_pins_closes_their_sockets() {
    revoking_pins_closes_their_sockets_via(&[]).await;
}

#[tokio::test]
async fn revoking_pins_closes_their_sockets_through_the_management_api() {
    revoking_pins_closes_their_sockets_via(&["--fanout", "api"]).await;
}

async fn revoking_pins_closes_their_sockets_via(args: &[&str]) {
    let ctx = Ctx::start(args);
    let (s, v) = send(
        M::POST,
        &ctx.url("pin"),
        None,
        Some(json!({"identifier": ctx.client_id})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (pin, game) = (v["pin"].as_str().unwrap(), v["token"].as_str().unwrap());
    let caster = ctx.token("broadcaster", "1001", Some("1001")).await;
    let (s, v) = ctx.post("validate_pin", &caster, json!({"pin": pin})).await;
    assert_eq!(s, 200, "{v}");
    let mut game_ws = ctx
        .connect(&ctx.client_id, game)
        .await
        .expect("the game connects");
    let mut viewer = ctx.viewer_socket("1001", "77").await;
    let (s, _) = send(M::DELETE, &ctx.url("pin"), Some(&ctx.auth(&caster)), None).await;
    assert_eq!(s, 200);
    assert!(
        closed_within(&mut game_ws, Duration::from_secs(5)).await,
        "the game's socket closed"
    );
    // The viewer's socket is untouched and still receives.
    let (s, _) = ctx
        .post(
            "broadcast",
            &caster,
            json!({"target": "broadcast", "event": "after"}),
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        next_frame(&mut viewer, Duration::from_secs(5))
            .await
            .is_some()
    );
}

/// Finding 8: trickled headers held a connection for over 75 s, and a
/// declared body that never came kept its request open. Headers now have
/// `--header-timeout` seconds, a whole request `--request-timeout`.
#[tokio::test]
async fn slow_clients_are_cut_off() {
    let ctx = Ctx::start(&["--header-timeout", "1", "--request-timeout", "1"]);
    let addr = ctx.server.base.trim_start_matches("http://").to_string();
    // Headers that never end: the connection is closed.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /v1/e/channel_state HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(6), slow.read(&mut buf)).await;
    assert!(read.is_ok(), "the half-sent request was not cut off");
    // A body declared and never sent: 408 with a reason.
    let mut stuck = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let viewer = ctx.token("viewer", "1001", Some("5")).await;
    let head = format!(
        "POST /v1/e/viewer_state HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        ctx.auth(&viewer)
    );
    stuck.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(6), async {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stuck.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&chunk[..n]);
            if answer.windows(8).any(|w| w == b"\"reason\"") {
                break;
            }
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"reason\""), "{answer}");
}

/// Finding 8: the emulated Management API served anyone. It needs a
/// loopback `--host` to be used for fan-out, and answers loopback peers only
/// (that check is unit-tested in the binary: these tests run on loopback).
#[tokio::test]
async fn the_management_api_is_not_for_other_hosts() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_medkit"))
        .args([
            "serve", "--memory", "--port", "0", "--host", "0.0.0.0", "--fanout", "api",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}
