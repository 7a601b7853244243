//! The hub's TLS: a given certificate and key, or a self-signed certificate made once and
//! kept in the data directory (so its fingerprint, which agents pin, survives restarts).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use castellan_pve::Fingerprint;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The self-signed certificate's file in the data directory.
pub const CERT_FILE: &str = "hub-cert.pem";
/// Its private key (mode 0600).
pub const KEY_FILE: &str = "hub-key.pem";

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The material is unusable.
    #[error("tls: {0}")]
    Invalid(String),
}

/// A server configuration and the fingerprint clients pin.
#[derive(Debug)]
pub struct ServerTls {
    /// For the listener.
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the end-entity certificate.
    pub fingerprint: Fingerprint,
}

/// Formats a fingerprint as `AB:CD:...`, the form agents are configured with.
pub fn fingerprint_text(fp: &Fingerprint) -> String {
    fp.as_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn file_err(path: &Path, message: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// Loads a certificate chain and key from PEM files.
pub fn from_files(cert: &Path, key: &Path) -> Result<ServerTls, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert, e))?;
    let Some(leaf) = certs.first() else {
        return Err(file_err(cert, "no certificate in the file"));
    };
    let fingerprint = Fingerprint::of_der(leaf.as_ref());
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e))?;
    build(certs, key, fingerprint)
}

/// Loads the self-signed certificate kept in `dir`, making one first if there is none.
/// `names` are the DNS names and addresses it is issued for.
pub fn self_signed(dir: &Path, names: &[String]) -> Result<ServerTls, TlsError> {
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => return from_files(&cert_path, &key_path),
        (false, false) => {}
        _ => {
            return Err(file_err(
                dir,
                format!(
                    "holds only one of {CERT_FILE} and {KEY_FILE}: remove it or restore the other"
                ),
            ));
        }
    }
    let ck = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    // The key first, created exclusively with mode 0600: never through a link, never
    // readable by others even for a moment.
    write_new(&key_path, ck.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert_path, ck.cert.pem().as_bytes(), 0o644)?;
    tracing::info!(event = "hub_certificate_created", path = %cert_path.display());
    from_files(&cert_path, &key_path)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| file_err(path, e))?;
    f.write_all(bytes).map_err(|e| file_err(path, e))?;
    f.sync_all().map_err(|e| file_err(path, e))
}

fn build(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    fingerprint: Fingerprint,
) -> Result<ServerTls, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    // The front speaks HTTP/1.1 only (see `front`).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServerTls {
        config: Arc::new(config),
        fingerprint,
    })
}
