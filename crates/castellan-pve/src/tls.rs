//! TLS trust for Proxmox VE nodes.
//!
//! Nodes ship a self-signed certificate (`/etc/pve/local/pve-ssl.pem`, issued by the
//! cluster's own CA in `/etc/pve/pve-root-ca.pem`), so the client supports, besides the
//! system roots: a CA file or PEM (the cluster CA), pinning the SHA-256 fingerprint of the
//! node's certificate (what the PVE GUI shows under Certificates), and `insecure`.
//!
//! Pinning replaces chain, name and validity checks by a comparison of the end-entity
//! certificate's SHA-256 with the pin, but the handshake signature is still verified against
//! that certificate's key, so a peer that merely replays the certificate cannot complete the
//! handshake.

use crate::error::Error;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

/// How the client decides whether to trust the node's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// The operating system's trust store (for nodes with an ACME or otherwise public
    /// certificate).
    System,
    /// Trust the CA certificate(s) in this PEM file, for example a copy of the cluster's
    /// `/etc/pve/pve-root-ca.pem`.
    CaFile(PathBuf),
    /// Trust the CA certificate(s) in this PEM text.
    CaPem(String),
    /// Trust exactly the certificate with this SHA-256 fingerprint, whatever its issuer,
    /// names and validity; the handshake signature is still verified.
    Fingerprint(Fingerprint),
    /// Accept any certificate. Only for tests and first contact; the caller should log a
    /// warning when it uses this. Handshake signatures are still checked for consistency.
    Insecure,
}

/// The SHA-256 fingerprint of a DER-encoded certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// The fingerprint as 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for Fingerprint {
    type Err = Error;

    /// Parses 64 hex digits, with or without `:` separators between bytes, in any case —
    /// the form `openssl x509 -fingerprint -sha256` and the PVE GUI print.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let compact: String = if s.contains(':') {
            let parts: Vec<&str> = s.split(':').collect();
            if parts.len() != 32 || parts.iter().any(|p| p.len() != 2) {
                return Err(Error::Config(format!(
                    "invalid sha-256 fingerprint {s:?}: expected 32 ':'-separated hex byte pairs"
                )));
            }
            parts.concat()
        } else {
            s.to_owned()
        };
        if compact.len() != 64 {
            return Err(Error::Config(format!(
                "invalid sha-256 fingerprint {s:?}: expected 64 hex digits, found {}",
                compact.len()
            )));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&compact, &mut bytes)
            .map_err(|e| Error::Config(format!("invalid sha-256 fingerprint {s:?}: {e}")))?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for Fingerprint {
    /// Upper-case hex bytes separated by `:`, as the PVE GUI shows them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A configuration that trusts nothing: for a plain `http://` node, where TLS is never
/// used (a redirect to `https://` then fails verification instead of loading a trust
/// store the host may not have).
pub fn trust_nothing() -> Result<rustls::ClientConfig, Error> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("cannot set up tls protocol versions: {e}")))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

/// Builds the rustls client configuration for a [`TlsMode`]. Only HTTP/1.1 is offered:
/// pveproxy speaks nothing else, and error texts travel in the HTTP/1 reason phrase.
pub fn client_config(mode: &TlsMode) -> Result<rustls::ClientConfig, Error> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("cannot set up tls protocol versions: {e}")))?;
    let mut config = match mode {
        TlsMode::System => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| Error::Tls(format!("cannot load the system trust store: {e}")))?
                .with_no_client_auth()
        }
        TlsMode::CaFile(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                Error::Config(format!("cannot read ca file {}: {e}", path.display()))
            })?;
            let roots = root_store(&pem, &format!("ca file {}", path.display()))?;
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsMode::CaPem(pem) => {
            let roots = root_store(pem.as_bytes(), "ca pem")?;
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsMode::Fingerprint(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                pin: Some(*fp),
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        TlsMode::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                pin: None,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn root_store(pem: &[u8], what: &str) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| Error::Config(format!("cannot parse {what}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| Error::Config(format!("cannot use certificate from {what}: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::Config(format!(
            "cannot use {what}: it contains no pem certificate"
        )));
    }
    Ok(roots)
}

/// Accepts the server certificate whose SHA-256 equals `pin` (or any, when `pin` is `None`),
/// and verifies handshake signatures with the provider's algorithms against that certificate.
#[derive(Debug)]
struct PinnedVerifier {
    pin: Option<Fingerprint>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pin) = self.pin else {
            return Ok(ServerCertVerified::assertion());
        };
        let seen = Fingerprint::of_der(end_entity.as_ref());
        // Not secret material, so a plain comparison is fine.
        if seen == pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate fingerprint {seen} does not match the pinned {pin}"
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

    #[test]
    fn parses_fingerprints_in_any_form() -> Result<(), Error> {
        let plain: Fingerprint = HEX.parse()?;
        let upper: Fingerprint = HEX.to_uppercase().parse()?;
        let colons: Fingerprint = plain.to_string().parse()?;
        let lower_colons: Fingerprint = plain.to_string().to_lowercase().parse()?;
        assert_eq!(plain, upper);
        assert_eq!(plain, colons);
        assert_eq!(plain, lower_colons);
        assert_eq!(plain.0[0], 0xa1);
        assert!(plain.to_string().starts_with("A1:B2:C3"));
        Ok(())
    }

    #[test]
    fn rejects_bad_fingerprints() {
        for bad in [
            "",
            &HEX[..62],
            &format!("{HEX}00"),
            &HEX.replace('a', "g"),
            "A1:B2",
            "A1B2:C3D4:E5F60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn ca_pem_without_certificates_is_rejected() {
        let err = client_config(&TlsMode::CaPem("not a pem".into()));
        assert!(matches!(err, Err(Error::Config(_))), "{err:?}");
        let missing = client_config(&TlsMode::CaFile("/nonexistent/ca.pem".into()));
        assert!(matches!(missing, Err(Error::Config(m)) if m.contains("/nonexistent/ca.pem")));
    }
}
