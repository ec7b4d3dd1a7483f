//! The `medkit` binary as a user runs it: start `medkit serve`, read the
//! banner, and use the printed tokens and the sandbox flow over real HTTP.

use std::process::Command;

use serde_json::json;

use crate::common::{Server, send};

#[tokio::test]
async fn serve_prints_working_tokens_and_the_sandbox_flow_works() {
    let server = Server::start(&["--memory"]);
    let client_id = server.banner_value("client id:");
    let viewer = format!("{client_id} {}", server.banner_value("viewer:"));
    let broadcaster = format!("{client_id} {}", server.banner_value("broadcaster:"));
    let url = |p: &str| format!("{}/v1/e/{p}", server.base);
    use reqwest::Method as M;

    let (s, v) = send(
        M::POST,
        &url("channel_state"),
        Some(&broadcaster),
        Some(json!({"round": 1})),
    )
    .await;
    assert_eq!((s, v), (200, json!({"round": 1})));
    let (s, v) = send(
        M::PATCH,
        &url("channel_state"),
        Some(&broadcaster),
        Some(json!({"score": 9})),
    )
    .await;
    assert_eq!((s, v), (200, json!({"round": 1, "score": 9})));
    let (s, v) = send(M::GET, &url("channel_state"), Some(&viewer), None).await;
    assert_eq!((s, v), (200, json!({"round": 1, "score": 9})));

    // The sandbox flow the official client uses: authtoken, then user_info.
    let (s, v) = send(
        M::POST,
        &url("authtoken?role=viewer"),
        None,
        Some(json!({"app_id": client_id, "channel_id": "1001", "user_id": "77"})),
    )
    .await;
    assert_eq!(s, 200);
    let minted = format!("{client_id} {}", v["token"].as_str().unwrap());
    let (s, v) = send(M::GET, &url("user_info"), Some(&minted), None).await;
    assert_eq!((s, v["ip_address"].clone()), (200, json!("127.0.0.0")));
    let (s, v) = send(M::GET, &url("nowhere"), Some(&minted), None).await;
    assert_eq!(s, 404);
    assert!(v["reason"].is_string());
}

#[tokio::test]
async fn token_command_mints_tokens_for_a_configured_extension() {
    let secret = "bXkgb3duIGV4dGVuc2lvbiBzZWNyZXQ="; // "my own extension secret"
    let server = Server::start(&[
        "--memory",
        "--env",
        "production",
        "--extension",
        &format!("myext:{secret}"),
    ]);
    assert!(
        server.banner.iter().all(|l| !l.contains(secret)),
        "secrets are never printed"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_medkit"))
        .args([
            "token",
            "--client-id",
            "myext",
            "--secret",
            secret,
            "--role",
            "broadcaster",
            "--channel",
            "5",
            "--user",
            "5",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let auth = format!("myext {token}");
    let url = format!("{}/v1/e/channel_state", server.base);
    let (s, v) = send(
        reqwest::Method::POST,
        &url,
        Some(&auth),
        Some(json!({"prod": true})),
    )
    .await;
    assert_eq!((s, v), (200, json!({"prod": true})));
    // Production: no authtoken.
    let (s, _) = send(
        reqwest::Method::POST,
        &format!("{}/v1/e/authtoken", server.base),
        None,
        Some(json!({"app_id": "myext", "channel_id": "5"})),
    )
    .await;
    assert_eq!(s, 404);
}

#[test]
fn bad_configuration_fails_at_start_with_a_clear_message() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_medkit"))
            .args(args)
            .env_remove("MEDKIT_EXTENSIONS")
            .env_remove("MEDKIT_ENV")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(
        run(&["serve", "--memory", "--port", "0", "--env", "production"]).contains("--extension")
    );
    let err = run(&[
        "serve",
        "--memory",
        "--port",
        "0",
        "--extension",
        "abc:!!notbase64secret",
    ]);
    assert!(
        err.contains("abc") && !err.contains("notbase64secret"),
        "{err}"
    );
    assert!(run(&["serve", "--memory", "--port", "0", "--env", "staging"]).contains("staging"));
    assert!(
        run(&[
            "token",
            "--client-id",
            "a",
            "--secret",
            "%%%",
            "--role",
            "viewer",
            "--channel",
            "1"
        ])
        .contains("base64")
    );
}

#[tokio::test]
async fn the_file_store_keeps_data_and_the_demo_secret_across_restarts() {
    let dir = std::env::temp_dir().join(format!("medkit-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data_dir = dir.to_str().unwrap();
    let (secret, broadcaster) = {
        let server = Server::start(&["--data-dir", data_dir]);
        let auth = format!("medkit-demo {}", server.banner_value("broadcaster:"));
        let (s, _) = send(
            reqwest::Method::POST,
            &format!("{}/v1/e/channel_state", server.base),
            Some(&auth),
            Some(json!({"kept": 1})),
        )
        .await;
        assert_eq!(s, 200);
        (server.banner_value("secret:"), auth)
    };
    let server = Server::start(&["--data-dir", data_dir]);
    assert_eq!(server.banner_value("secret:"), secret);
    // A token from the first run still works, and the data is there.
    let (s, v) = send(
        reqwest::Method::GET,
        &format!("{}/v1/e/channel_state", server.base),
        Some(&broadcaster),
        None,
    )
    .await;
    assert_eq!((s, v), (200, json!({"kept": 1})));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn serve_answers_the_aggregate_endpoints() {
    let server = Server::start(&["--memory"]);
    let client_id = server.banner_value("client id:");
    let viewer = format!("{client_id} {}", server.banner_value("viewer:"));
    let broadcaster = format!("{client_id} {}", server.banner_value("broadcaster:"));
    let url = |p: &str| format!("{}/v1/e/{p}", server.base);
    use reqwest::Method as M;

    let (s, v) = send(
        M::POST,
        &url("vote?id=p"),
        Some(&viewer),
        Some(json!({"value": 4})),
    )
    .await;
    assert_eq!(
        (s, v["count"].clone(), v["vote"].clone()),
        (200, json!(1), json!(4))
    );
    let (s, v) = send(
        M::POST,
        &url("vote?id=p"),
        Some(&broadcaster),
        Some(json!({"value": 2, "count": 3})),
    )
    .await;
    assert_eq!(
        (s, v["count"].clone(), v["sum"].clone()),
        (200, json!(4), json!(10))
    );
    let (s, v) = send(
        M::POST,
        &url("rank?id=r"),
        Some(&viewer),
        Some(json!({"key": "pizza"})),
    )
    .await;
    assert_eq!((s, v), (200, json!({"accepted": true})));
    let (_, v) = send(M::GET, &url("rank?id=r"), Some(&viewer), None).await;
    assert_eq!(v, json!({"data": [{"key": "pizza", "score": 1}]}));
    let (s, _) = send(
        M::POST,
        &url("accumulate?id=a"),
        Some(&viewer),
        Some(json!({"n": 1})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, v) = send(
        M::GET,
        &url("accumulate?id=a&start=undefined"),
        Some(&broadcaster),
        None,
    )
    .await;
    assert_eq!(v["data"][0]["data"], json!({"n": 1}));
    let (s, v) = send(
        M::POST,
        &url("vote?id=p"),
        Some(&viewer),
        Some(json!({"value": "x"})),
    )
    .await;
    assert_eq!(s, 400);
    assert!(v["reason"].is_string());
}

#[tokio::test]
async fn codes_upload_and_status_through_the_cli() {
    let server = Server::start(&["--memory"]);
    let secret = server.banner_value("secret:");
    let dir = std::env::temp_dir().join(format!("medkit-codes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("codes.txt");
    let codes: String = (0..2500).map(|i| format!("KEY-{i:05}\n")).collect();
    std::fs::write(&file, format!("{codes}\n\n")).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_medkit"))
            .args(["codes"])
            .args(args)
            .args(["--url", &server.base, "--secret", &secret])
            .output()
            .unwrap()
    };
    // Small parts force the multi-request path (PUT, then PUT ?append=true).
    let out = run(&[
        "upload",
        "--slot",
        "3",
        "--name",
        "beta keys",
        "--part-bytes",
        "10000",
        file.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("uploaded 2500 codes to slot 3"), "{stdout}");
    assert!(stdout.contains("in 4 request(s)"), "{stdout}");
    let out = run(&["status"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("beta keys") && stdout.contains("2500"),
        "{stdout}"
    );
    // A bad code is reported with its line, and nothing is sent.
    std::fs::write(
        &file,
        "GOOD\n\nTHIS-CODE-IS-FAR-TOO-LONG-TO-BE-A-CODE-0123456789-0123456789-0123456789\n",
    )
    .unwrap();
    let out = run(&[
        "upload",
        "--slot",
        "4",
        "--name",
        "bad",
        file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("codes.txt:3"));
    let out = run(&["status"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("bad"));
    let _ = std::fs::remove_dir_all(dir);
}
