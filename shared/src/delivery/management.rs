//! [`Poster`] over the API Gateway Management API (`PostToConnection`), the
//! way a Lambda function reaches WebSocket clients. The dev server emulates
//! this API at `http://HOST:PORT/ws`, so the same client runs on a laptop.

use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_apigatewaymanagement::operation::delete_connection::DeleteConnectionError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use bytes::Bytes;

use super::{PostError, PostFuture, Poster};
use crate::error::ConfigError;
use crate::ids::ConnectionId;

/// The client is built on the first post: most functions (auth, codes) and
/// most invocations never post, and building it is ~0.15 ms of a cold start.
pub struct ManagementPoster {
    conf: aws_sdk_apigatewaymanagement::Config,
    client: std::sync::OnceLock<Client>,
}

impl ManagementPoster {
    /// A client for the stage at `endpoint`
    /// (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`, or the
    /// dev server's `http://127.0.0.1:8080/ws`). A loopback endpoint gets
    /// dummy credentials, as DynamoDB Local does; any other needs the Lambda
    /// environment's (see `aws::lambda_config`).
    pub fn connect(endpoint: &str) -> Result<Self, ConfigError> {
        let conf = if is_loopback(endpoint) {
            crate::aws::local_config(endpoint)
        } else {
            crate::aws::lambda_config()?
        };
        Ok(Self::from_conf(&conf, endpoint))
    }

    /// From an SDK configuration already built (a Lambda's one at init).
    pub fn from_conf(conf: &aws_types::SdkConfig, endpoint: &str) -> Self {
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(conf)
            .endpoint_url(endpoint)
            // Throttling is retried by the fan-out with its own backoff.
            .retry_config(aws_sdk_apigatewaymanagement::config::retry::RetryConfig::disabled())
            .build();
        ManagementPoster {
            conf,
            client: std::sync::OnceLock::new(),
        }
    }

    fn client(&self) -> &Client {
        self.client
            .get_or_init(|| Client::from_conf(self.conf.clone()))
    }

    /// `DeleteConnection`: API Gateway closes the socket.
    async fn delete(&self, id: &ConnectionId) -> Result<(), PostError> {
        let out = self
            .client()
            .delete_connection()
            .connection_id(id.as_str())
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se))
                if matches!(se.err(), DeleteConnectionError::GoneException(_)) =>
            {
                Ok(())
            }
            Err(e) => Err(PostError::Failed(DisplayErrorContext(&e).to_string())),
        }
    }

    async fn post_frame(&self, id: &ConnectionId, frame: &Bytes) -> Result<(), PostError> {
        self.client()
            .post_to_connection()
            .connection_id(id.as_str())
            .data(Blob::new(frame.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(post_error)
    }
}

impl Poster for ManagementPoster {
    fn post<'a>(&'a self, id: &'a ConnectionId, frame: &'a Bytes) -> PostFuture<'a> {
        Box::pin(self.post_frame(id, frame))
    }
    fn close<'a>(&'a self, id: &'a ConnectionId) -> PostFuture<'a> {
        Box::pin(self.delete(id))
    }
}

fn post_error<R: std::fmt::Debug>(e: SdkError<PostToConnectionError, R>) -> PostError {
    if matches!(
        e,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_)
    ) {
        return PostError::Transient(DisplayErrorContext(&e).to_string());
    }
    if let SdkError::ServiceError(se) = &e {
        match se.err() {
            PostToConnectionError::GoneException(_) => return PostError::Gone,
            PostToConnectionError::LimitExceededException(_) => return PostError::Throttled,
            err if err.code() == Some("TooManyRequestsException") => return PostError::Throttled,
            _ => {}
        }
    }
    PostError::Failed(DisplayErrorContext(&e).to_string())
}

fn is_loopback(endpoint: &str) -> bool {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint);
    rest.starts_with("127.") || rest.starts_with("localhost") || rest.starts_with("[::1]")
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_endpoints_are_recognised() {
        assert!(super::is_loopback("http://127.0.0.1:8080/ws"));
        assert!(super::is_loopback("http://localhost:8080/ws"));
        assert!(!super::is_loopback(
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod"
        ));
    }
}
