//! AWS SDK set-up shared by the adapters that talk to AWS (DynamoDB, the
//! API Gateway Management API): one TLS stack, the Amazon roots compiled in,
//! bounded timeouts and retries, region and credentials named outright.
//!
//! The configuration is built by hand rather than by `aws-config`'s loader:
//! a Lambda's region and role credentials are in its environment, and a
//! local endpoint (DynamoDB Local, the dev server's Management API) needs
//! none. The loader's provider chains (profile files, SSO, web identity
//! through STS, IMDS) would never run here, yet they were ~0.4 MB of every
//! bootstrap and part of every init.

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::SdkConfig;
use aws_types::region::Region;

use crate::error::ConfigError;

/// Timeouts of one AWS call: DynamoDB answers in milliseconds, so a try
/// that takes a second is lost; a call (up to 3 tries) has 2 s. These bound
/// the time a retried store operation needs per attempt (`budget`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const LOCAL_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(2);
/// DynamoDB Local (an endpoint override) is one JVM on the same machine as
/// its load: it can take seconds under a test's burst of transactions.
const LOCAL_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const LOCAL_OPERATION_TIMEOUT: Duration = Duration::from_secs(80);

/// The roots AWS endpoints chain to (Amazon Trust Services).
const AWS_ROOTS: &[u8] = include_bytes!("../certs/aws-roots.pem");

/// The SDK's standard variables for an endpoint override, the service's own
/// first (`cargo lambda watch --env-file events/local.env` points a function
/// at DynamoDB Local with them).
const ENDPOINT_VARS: [&str; 2] = ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"];

/// The configuration of a Lambda function: AWS itself, with the region and
/// the role's credentials from the environment Lambda gives every function
/// (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`); or, when an endpoint override is set, that endpoint
/// as [`local_config`] builds it.
pub fn lambda_config() -> Result<SdkConfig, ConfigError> {
    config_from(|name| std::env::var(name).ok())
}

/// The configuration for an endpoint on this machine or a test's (DynamoDB
/// Local, the dev server's Management API): fixed dummy credentials and the
/// region from `AWS_REGION` (default us-east-1), so nothing is looked up.
pub fn local_config(endpoint: &str) -> SdkConfig {
    local_from(endpoint, std::env::var("AWS_REGION").ok())
}

/// Testable core of [`lambda_config`].
fn config_from(get: impl Fn(&str) -> Option<String>) -> Result<SdkConfig, ConfigError> {
    let var = |name: &'static str| {
        get(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::Missing(name))
    };
    if let Some(url) = ENDPOINT_VARS.iter().find_map(|v| var(v).ok()) {
        return Ok(local_from(url.trim(), get("AWS_REGION")));
    }
    let credentials = Credentials::new(
        var("AWS_ACCESS_KEY_ID")?,
        var("AWS_SECRET_ACCESS_KEY")?,
        get("AWS_SESSION_TOKEN"),
        None,
        "lambda-environment",
    );
    Ok(build(None, credentials, var("AWS_REGION")?))
}

fn local_from(endpoint: &str, region: Option<String>) -> SdkConfig {
    let credentials = Credentials::new("local", "local", None, None, "medkit-local");
    let region = region.unwrap_or_else(|| "us-east-1".into());
    build(Some(endpoint), credentials, region)
}

/// One TLS stack (rustls + ring), bounded timeouts and retries, so an
/// unreachable store answers 503 quickly instead of hanging.
///
/// Against AWS itself TLS trusts only the Amazon roots, compiled in: loading
/// the system's CA bundle was ~3 ms of every cold start (about half of a
/// function's init). An overridden endpoint may be anything, so it gets the
/// system's roots.
fn build(endpoint: Option<&str>, credentials: Credentials, region: String) -> SdkConfig {
    use aws_smithy_http_client::tls;
    let trust = match endpoint {
        None => tls::TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AWS_ROOTS),
        Some(_) => tls::TrustStore::default(),
    };
    let tls_context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("the compiled-in roots parse");
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(tls_context)
        .build_https();
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(match endpoint {
            None => CONNECT_TIMEOUT,
            Some(_) => LOCAL_CONNECT_TIMEOUT,
        })
        .operation_attempt_timeout(match endpoint {
            None => ATTEMPT_TIMEOUT,
            Some(_) => LOCAL_ATTEMPT_TIMEOUT,
        })
        .operation_timeout(match endpoint {
            None => OPERATION_TIMEOUT,
            Some(_) => LOCAL_OPERATION_TIMEOUT,
        })
        .build();
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        // Retries and timeouts sleep on the tokio runtime.
        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .region(Region::new(region));
    if let Some(url) = endpoint {
        config = config.endpoint_url(url);
    }
    config.build()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn an_attempt_and_the_call_after_it_fit_the_reserve() {
        assert!(3 * OPERATION_TIMEOUT <= crate::budget::ATTEMPT_RESERVE);
        assert!(ATTEMPT_TIMEOUT <= OPERATION_TIMEOUT && CONNECT_TIMEOUT <= ATTEMPT_TIMEOUT);
    }

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const LAMBDA: &[(&str, &str)] = &[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret-example"),
        ("AWS_SESSION_TOKEN", "token-example"),
    ];

    #[test]
    fn a_lambda_environment_names_region_and_credentials() {
        let conf = config_from(lookup(LAMBDA)).unwrap();
        assert_eq!(conf.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(conf.endpoint_url(), None);
        assert!(conf.credentials_provider().is_some());
        for (i, (var, _)) in LAMBDA.iter().enumerate().take(3) {
            let mut vars = LAMBDA.to_vec();
            vars.remove(i);
            let err = config_from(lookup(&vars)).unwrap_err();
            assert_eq!(err, ConfigError::Missing(var), "{var}");
            assert!(!err.to_string().contains("secret-example"));
        }
    }

    #[test]
    fn an_endpoint_override_needs_no_account() {
        // `cargo lambda watch --env-file events/local.env`.
        let conf = config_from(lookup(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:8000")])).unwrap();
        assert_eq!(conf.endpoint_url(), Some("http://127.0.0.1:8000"));
        assert_eq!(conf.region().map(|r| r.as_ref()), Some("us-east-1"));
        let conf = config_from(lookup(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:8000"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8001"),
        ]))
        .unwrap();
        assert_eq!(conf.endpoint_url(), Some("http://127.0.0.1:8001"));
    }
}
