//! The servers Strata's integration tests start themselves: moto's S3
//! server (PyPI) and Azurite's Azure Blob server (npm), each on a free
//! loopback port and killed on drop; `scripts/test.sh` installs both.
#![allow(clippy::unwrap_used)] // Test support: a failure here is a failed test.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use strata_runtime::tiers::TierStore;

/// A free loopback port.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a test server (`what`) and waits until it listens on `port`,
/// up to 30 s; `install` says how to get it (scripts/test.sh does).
fn serve(mut command: Command, port: u16, what: &str, install: &str) -> Child {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} ({e}): {install} (scripts/test.sh does)"));
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}): {install} (scripts/test.sh does)");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("{what} did not listen on {port} within 30 s");
}

/// moto's S3 server on a free loopback port, killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let python = std::env::var("STRATA_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut command = Command::new(&python);
        command.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ]);
        let what = format!("{python} -m moto.server");
        let child = serve(command, port, &what, "pip install 'moto[server]'");
        let endpoint = format!("http://127.0.0.1:{port}");
        Moto { child, endpoint }
    }

    /// One plain HTTP request (moto accepts unsigned ones); the response.
    pub fn request(&self, method: &str, target: &str) -> String {
        use std::io::{Read, Write};
        let addr = self.endpoint.trim_start_matches("http://");
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        write!(conn, "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).unwrap();
        response
    }

    /// Tier options for this server. Test credentials for moto; real
    /// deployments take them from `AWS_*` variables.
    pub fn tier_options(&self) -> [(&str, &str); 5] {
        [
            ("endpoint", self.endpoint.as_str()),
            ("allow_http", "true"),
            ("region", "us-east-1"),
            ("access_key_id", "test"),
            ("secret_access_key", "test"),
        ]
    }

    pub fn create_bucket(&self, bucket: &str) {
        let response = self.request("PUT", &format!("/{bucket}"));
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "create bucket {bucket}: {response}"
        );
    }

    /// The storage class `key` on the S3 tier `t` is billed in (S3 names
    /// every class but STANDARD in a HEAD's `x-amz-storage-class`).
    pub async fn storage_class(&self, t: &TierStore, key: &str) -> String {
        use object_store::signer::Signer;
        let s3 = t.s3.as_ref().expect("an S3 tier");
        let url = s3
            .store
            .signed_url(
                http::Method::HEAD,
                &t.location(key).unwrap(),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        let target = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        let response = self.request("HEAD", &target);
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "HEAD {key}: {response}"
        );
        response
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("x-amz-storage-class")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "STANDARD".into())
    }

    /// Multipart uploads begun in `bucket` and neither completed nor aborted.
    pub fn open_uploads(&self, bucket: &str) -> usize {
        let response = self.request("GET", &format!("/{bucket}?uploads"));
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response.matches("<UploadId>").count()
    }
}

/// Azurite's Blob service (npm `azurite`, which scripts/test.sh installs)
/// on a free loopback port, killed on drop. `STRATA_TEST_AZURITE` names its
/// `azurite-blob` command (default: on PATH).
pub struct Azurite {
    child: Child,
    pub endpoint: String,
    _data: tempfile::TempDir,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Azurite {
    const ACCOUNT: &str = "devstoreaccount1";
    /// Azurite's published development key (no secret).
    const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    pub fn start() -> Azurite {
        let port = free_port();
        let data = tempfile::tempdir().unwrap();
        let azurite =
            std::env::var("STRATA_TEST_AZURITE").unwrap_or_else(|_| "azurite-blob".into());
        let mut command = Command::new(&azurite);
        command
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(data.path())
            .args(["--silent", "--skipApiVersionCheck", "--loose"]);
        let child = serve(command, port, &azurite, "npm install -g azurite");
        Azurite {
            child,
            endpoint: format!("http://127.0.0.1:{port}/{}", Self::ACCOUNT),
            _data: data,
        }
    }

    /// Tier options for this server (real deployments take the account's
    /// credentials from `AZURE_STORAGE_*` variables).
    pub fn tier_options(&self) -> [(&str, &str); 4] {
        [
            ("endpoint", self.endpoint.as_str()),
            ("allow_http", "true"),
            ("account_name", Self::ACCOUNT),
            ("access_key", Self::KEY),
        ]
    }

    /// Sends a request signed with the account key; its status and headers.
    pub async fn signed(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> (u16, http::HeaderMap) {
        use object_store::{
            azure::{AzureAccessKey, AzureAuthorizer, AzureCredential},
            client::{HttpConnector, HttpRequestBody, ReqwestConnector},
        };
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("{}{target}", self.endpoint))
            .header("x-ms-version", "2023-11-03")
            .header(
                "x-ms-date",
                chrono::Utc::now()
                    .format("%a, %d %h %Y %H:%M:%S GMT")
                    .to_string(),
            )
            .header("content-length", "0");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut request = builder.body(HttpRequestBody::from(Vec::new())).unwrap();
        let credential = AzureCredential::AccessKey(AzureAccessKey::try_new(Self::KEY).unwrap());
        AzureAuthorizer::new(&credential, Self::ACCOUNT)
            .try_authorize(&mut request)
            .unwrap();
        let options = object_store::ClientOptions::new().with_allow_http(true);
        let client = ReqwestConnector::default().connect(&options).unwrap();
        let response = client.execute(request).await.unwrap();
        (response.status().as_u16(), response.headers().clone())
    }

    pub async fn create_container(&self, name: &str) {
        let target = format!("/{name}?restype=container");
        let (status, _) = self.signed("PUT", &target, &[]).await;
        assert_eq!(status, 201, "create container {name}");
    }

    /// The access tier of `key` in `container`.
    pub async fn access_tier(&self, container: &str, key: &str) -> String {
        let (status, headers) = self
            .signed("HEAD", &format!("/{container}/{key}"), &[])
            .await;
        assert_eq!(status, 200, "HEAD {key}");
        headers
            .get("x-ms-access-tier")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}
