//! AWS SDK set-up shared by the adapters that talk to AWS (DynamoDB, the
//! API Gateway Management API): one TLS stack, the Amazon roots compiled in,
//! bounded timeouts and retries.

use std::time::Duration;

/// The roots AWS endpoints chain to (Amazon Trust Services).
const AWS_ROOTS: &[u8] = include_bytes!("../certs/aws-roots.pem");

/// SDK configuration with one TLS stack (rustls + ring), bounded timeouts and
/// retries, so an unreachable store answers 503 quickly instead of hanging.
///
/// Against AWS itself (no endpoint override) TLS trusts only the Amazon
/// roots, compiled in: loading the system's CA bundle was ~3 ms of every
/// cold start (about half of a function's init). An overridden endpoint may
/// be anything, so it gets the system's roots.
pub async fn sdk_config(endpoint: Option<&str>) -> aws_config::SdkConfig {
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
    // DynamoDB Local (an endpoint override) is one JVM on the same machine as
    // its load: it can take seconds under a test's burst of transactions.
    let slow = if endpoint.is_some() { 10 } else { 1 };
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3 * slow))
        .operation_timeout(Duration::from_secs(8 * slow))
        .build();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeouts)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3));
    // In Lambda the region and the role's credentials are in the
    // environment: naming them skips the default provider chains (profile
    // files, SSO, IMDS), ~0.3 ms of a cold start.
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
        && std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
    if let (None, true, Ok(region)) = (endpoint, in_lambda, std::env::var("AWS_REGION")) {
        loader = loader
            .region(aws_sdk_dynamodb::config::Region::new(region))
            .credentials_provider(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            );
    }
    if let Some(url) = endpoint {
        // A local endpoint (DynamoDB Local) needs no real account: fixed dummy
        // credentials and a default region, so the SDK never probes for them.
        loader = loader
            .endpoint_url(url)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "medkit-local",
            ))
            .region(aws_sdk_dynamodb::config::Region::new(
                std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            ));
    }
    loader.load().await
}
