//! TLS with a private CA and bearer tokens, between the client and a real server.

use std::path::Path;

use flipbook_sdk_core::{AppendRequest, Client, ClientOptions, ConnectOptions, ErrorCode, Expectation, ProposedEvent};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A CA, and a certificate for `localhost` it signed: (CA PEM, certificate PEM, key PEM).
fn private_ca() -> (String, String, String) {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    let cert = params.signed_by(&key, &issuer).expect("certificate");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

async fn server(dir: &Path, token: Option<&str>, tls: Option<(&str, &str)>) -> flipbook_server::Running {
    let mut config = flipbook_server::Config::local(dir.join("flipbook.db"));
    config.auth.token = token.map(str::to_owned);
    if let Some((cert, key)) = tls {
        std::fs::write(dir.join("server.pem"), cert).expect("write");
        std::fs::write(dir.join("server.key"), key).expect("write");
        config.tls.cert = Some(dir.join("server.pem"));
        config.tls.key = Some(dir.join("server.key"));
    }
    flipbook_server::start(config).await.expect("start")
}

async fn connect(options: ConnectOptions) -> flipbook_sdk_core::Result<Client> {
    Client::connect_with(options, ClientOptions::default()).await
}

async fn append_one(client: &Client) -> flipbook_sdk_core::Result<u64> {
    let request = AppendRequest::new("s", Expectation::Any, vec![ProposedEvent::new("Happened", "{}")]);
    Ok(client.append(request).await?.last_version.unwrap_or_default())
}

#[tokio::test]
async fn tls_with_a_private_ca_and_a_bearer_token() {
    let dir = tempfile::tempdir().expect("dir");
    let (ca, cert, key) = private_ca();
    let server = server(dir.path(), Some("s3cret-token"), Some((&cert, &key))).await;
    let endpoint = format!("https://localhost:{}", server.addr.port());

    let mut options = ConnectOptions::new(&endpoint);
    options.ca_certificate = Some(ca.clone().into_bytes());
    options.token = Some("s3cret-token".to_owned());
    let client = connect(options.clone()).await.expect("connect over TLS with the token");
    assert_eq!(append_one(&client).await.expect("append"), 1);

    // The server's certificate is not signed by a public CA: refused.
    let mut untrusted = options.clone();
    untrusted.ca_certificate = None;
    let error = connect(untrusted).await.expect_err("unknown CA");
    assert_eq!(error.code(), ErrorCode::Unavailable, "{error}");

    // Plain HTTP/2 to a TLS port.
    let mut plain = options.clone();
    plain.endpoint = format!("http://127.0.0.1:{}", server.addr.port());
    plain.ca_certificate = None;
    assert!(connect(plain).await.is_err());

    // No token, or another one: UNAUTHENTICATED, and nothing is stored.
    for token in [None, Some("guess".to_owned())] {
        let mut anonymous = options.clone();
        anonymous.token = token;
        let error = connect(anonymous).await.expect_err("no access");
        assert_eq!(error.code(), ErrorCode::Unauthenticated, "{error}");
    }
    assert_eq!(client.head("s").await.expect("head").event_count, 1);
}

#[tokio::test]
async fn a_server_without_a_token_lets_every_call_through() {
    let dir = tempfile::tempdir().expect("dir");
    let server = server(dir.path(), None, None).await;
    let mut options = ConnectOptions::new(format!("http://{}", server.addr));
    options.token = Some("ignored".to_owned());
    let client = connect(options).await.expect("connect");
    assert_eq!(append_one(&client).await.expect("append"), 1);
}

#[tokio::test]
async fn bad_connect_options_are_refused_with_the_field() {
    let mut options = ConnectOptions::new("http://127.0.0.1:1");
    options.ca_certificate = Some(b"not a certificate".to_vec());
    let error = connect(options).await.expect_err("a CA needs https");
    assert_eq!(error.field(), Some("endpoint"));
    let mut options = ConnectOptions::new("http://127.0.0.1:1");
    options.token = Some("line\nbreak".to_owned());
    let error = connect(options).await.expect_err("refused");
    assert_eq!(error.field(), Some("token"));
    let error = connect(ConnectOptions::new("http://127.0.0.1:1")).await.expect_err("nothing listens");
    assert_eq!(error.code(), ErrorCode::Unavailable);
}

/// Tokens kept in a file (off the command line), several at once so they rotate without
/// downtime; the `Bearer` scheme in any case, the token exactly.
#[tokio::test]
async fn tokens_from_a_file_rotate_and_the_scheme_is_case_insensitive() {
    use flipbook_proto::v1::{self, server_info_client::ServerInfoClient};

    let dir = tempfile::tempdir().expect("dir");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# the old one, until every client has moved\nold-token\n\nnew-token\n").expect("write");
    let mut config = flipbook_server::Config::local(dir.path().join("flipbook.db"));
    config.auth.token_file = Some(tokens);
    let server = flipbook_server::start(config).await.expect("start");
    let endpoint = format!("http://{}", server.addr);

    for token in ["old-token", "new-token"] {
        let mut options = ConnectOptions::new(&endpoint);
        options.token = Some(token.to_owned());
        let client = connect(options).await.expect("either token is accepted");
        append_one(&client).await.expect("append");
    }
    let mut options = ConnectOptions::new(&endpoint);
    options.token = Some("NEW-TOKEN".to_owned());
    assert_eq!(connect(options).await.expect_err("tokens are exact").code(), ErrorCode::Unauthenticated);

    let mut info = ServerInfoClient::connect(endpoint).await.expect("connect");
    for (value, served) in
        [("bearer new-token", true), ("BEARER old-token", true), ("Basic new-token", false), ("new-token", false)]
    {
        let mut request = tonic::Request::new(v1::GetServerInfoRequest {});
        request.metadata_mut().insert("authorization", value.parse().expect("ASCII"));
        let result = info.get_server_info(request).await;
        assert_eq!(result.is_ok(), served, "{value}: {result:?}");
        if let Err(status) = result {
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
        }
    }
}
