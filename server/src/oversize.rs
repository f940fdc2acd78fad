//! A request over `max_request_bytes` is refused by tonic before any code of ours runs, as
//! OUT_OF_RANGE with no details. [`Oversize`] answers it the way every other limit is answered:
//! RESOURCE_EXHAUSTED, reason TOO_LARGE, naming the limit (docs/spec.md §2, "Limits"). Nothing
//! else in the server answers OUT_OF_RANGE, so the code alone says which refusal it is.

use std::task::{Context, Poll};

use flipbook_model::Error;
use flipbook_proto::status::to_status;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::{Code, Status};

/// Wraps one gRPC service of the API.
#[derive(Clone, Debug)]
pub struct Oversize<S> {
    inner: S,
    max_request_bytes: u64,
}

impl<S> Oversize<S> {
    pub fn new(inner: S, max_request_bytes: u64) -> Self {
        Self { inner, max_request_bytes }
    }
}

impl<S, B, R> Service<http::Request<B>> for Oversize<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (answer, max) = (self.inner.call(request), self.max_request_bytes);
        Box::pin(async move {
            let mut response = answer.await?;
            // tonic answers a refused request with its status in the headers and extensions.
            if response.extensions().get::<Status>().is_some_and(|status| status.code() == Code::OutOfRange) {
                let limit = format!("at most {max} bytes per request (max_request_bytes, server info)");
                let status = to_status(&Error::too_large("", limit));
                let headers = response.headers_mut();
                headers.remove(Status::GRPC_STATUS_DETAILS);
                if status.add_header(headers).is_ok() {
                    response.extensions_mut().insert(status);
                }
            }
            Ok(response)
        })
    }
}

impl<S: NamedService> NamedService for Oversize<S> {
    const NAME: &'static str = S::NAME;
}
