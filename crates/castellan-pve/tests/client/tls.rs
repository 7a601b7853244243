//! TLS trust: fingerprint pinning (right, wrong, and a replayed certificate with the wrong
//! key), CA file / PEM, insecure, and the system store refusing a self-signed node.

use crate::support::*;
use castellan_pve::{Error, Fingerprint, TlsMode};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde_json::json;
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn key_der(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

fn server_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, Box<dyn std::error::Error>> {
    Ok(rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?)
}

/// A node with a self-signed certificate, like a fresh PVE install.
struct SelfSigned {
    fake: Fake,
    fingerprint: Fingerprint,
}

async fn self_signed_node() -> Result<SelfSigned, Box<dyn std::error::Error>> {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "pve-01".to_owned()])?;
    let der = ck.cert.der().clone();
    let fingerprint = Fingerprint::of_der(&der);
    let fake = Fake::start_tls(server_config(der, key_der(&ck.signing_key))?).await?;
    fake.route(
        "GET",
        "/version",
        vec![ok(
            json!({"version": "9.1.3", "release": "9.1", "repoid": "a1b2c3d4"}),
        )],
    );
    Ok(SelfSigned { fake, fingerprint })
}

#[tokio::test]
async fn pinned_fingerprint_is_accepted() -> TestResult {
    let node = self_signed_node().await?;
    // The form an operator copies from the GUI: upper-case with colons.
    let pin: Fingerprint = node.fingerprint.to_string().parse()?;
    let client = node
        .fake
        .client_with(|c| c.tls = TlsMode::Fingerprint(pin))?;
    assert_eq!(client.version().await?.version, "9.1.3");
    Ok(())
}

#[tokio::test]
async fn wrong_fingerprint_is_a_tls_error_and_sends_nothing() -> TestResult {
    let node = self_signed_node().await?;
    let mut wrong = node.fingerprint;
    wrong.0[0] ^= 0xff;
    let client = node
        .fake
        .client_with(|c| c.tls = TlsMode::Fingerprint(wrong))?;
    let err = client.version().await;
    match &err {
        Err(e @ Error::Tls(m)) => {
            assert!(m.contains("does not match the pinned"), "{m}");
            assert!(!e.is_retryable());
        }
        other => panic!("expected Tls, got {other:?}"),
    }
    assert!(node.fake.seen().is_empty());
    Ok(())
}

/// Serves certificate A while signing the handshake with key B: what an attacker who copied
/// the node's certificate (but not its key) would do.
#[derive(Debug)]
struct StolenCert(Arc<CertifiedKey>);

impl ResolvesServerCert for StolenCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[tokio::test]
async fn pinning_still_verifies_the_handshake_signature() -> TestResult {
    let real = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
    let attacker_key = KeyPair::generate()?;
    let signer = provider()
        .key_provider
        .load_private_key(key_der(&attacker_key))?;
    let stolen = CertifiedKey::new(vec![real.cert.der().clone()], signer);
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(StolenCert(Arc::new(stolen))));
    let fake = Fake::start_tls(config).await?;
    let pin = Fingerprint::of_der(real.cert.der());
    let client = fake.client_with(|c| c.tls = TlsMode::Fingerprint(pin))?;
    let err = client.version().await;
    assert!(matches!(&err, Err(Error::Tls(_))), "{err:?}");
    assert!(fake.seen().is_empty());
    Ok(())
}

struct CaNode {
    fake: Fake,
    ca_pem: String,
}

/// A node whose certificate is issued by a cluster CA, like `pve-root-ca.pem`.
async fn ca_node() -> Result<CaNode, Box<dyn std::error::Error>> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Proxmox Virtual Environment");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let leaf_key = KeyPair::generate()?;
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])?.signed_by(&leaf_key, &ca)?;
    let fake = Fake::start_tls(server_config(leaf.der().clone(), key_der(&leaf_key))?).await?;
    fake.route(
        "GET",
        "/version",
        vec![ok(
            json!({"version": "9.1.3", "release": "9.1", "repoid": "a1b2c3d4"}),
        )],
    );
    Ok(CaNode {
        fake,
        ca_pem: ca.pem(),
    })
}

#[tokio::test]
async fn ca_pem_and_ca_file_are_trusted() -> TestResult {
    let node = ca_node().await?;
    let client = node
        .fake
        .client_with(|c| c.tls = TlsMode::CaPem(node.ca_pem.clone()))?;
    assert_eq!(client.version().await?.release, "9.1");

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("pve-root-ca.pem");
    std::fs::write(&path, &node.ca_pem)?;
    let client = node
        .fake
        .client_with(|c| c.tls = TlsMode::CaFile(path.clone()))?;
    assert_eq!(client.version().await?.release, "9.1");
    Ok(())
}

#[tokio::test]
async fn another_ca_is_rejected() -> TestResult {
    let node = ca_node().await?;
    let other = ca_node().await?;
    let client = node
        .fake
        .client_with(|c| c.tls = TlsMode::CaPem(other.ca_pem.clone()))?;
    let err = client.version().await;
    assert!(
        matches!(&err, Err(Error::Tls(m)) if m.contains("certificate")),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn insecure_accepts_a_self_signed_node() -> TestResult {
    let node = self_signed_node().await?;
    let client = node.fake.client_with(|c| c.tls = TlsMode::Insecure)?;
    assert_eq!(client.version().await?.version, "9.1.3");
    Ok(())
}

#[tokio::test]
async fn system_roots_reject_a_self_signed_node() -> TestResult {
    let node = self_signed_node().await?;
    // Building may fail on a machine without a trust store; that is a clear error too.
    let client = match node.fake.client_with(|c| c.tls = TlsMode::System) {
        Ok(c) => c,
        Err(e @ (Error::Tls(_) | Error::Config(_))) => {
            eprintln!("no system trust store here: {e}");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let err = client.version().await;
    assert!(matches!(&err, Err(Error::Tls(_))), "{err:?}");
    assert!(node.fake.seen().is_empty());
    Ok(())
}
