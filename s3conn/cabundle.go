package s3conn

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
)

// AdoptCABundle makes the custom CA named by AWS_CA_BUNDLE trusted by every
// TLS connection in the process, and then unsets AWS_CA_BUNDLE.
//
// Why: Litestream's S3 client passes a plain *http.Client to the AWS SDK,
// which then refuses AWS_CA_BUNDLE ("unable to add custom RootCAs
// HTTPClient, has no WithTransportOptions"). Dropping the variable would
// silently distrust a corporate proxy's CA, so instead the bundle joins Go's
// system roots through SSL_CERT_FILE, which crypto/x509 reads once, on first
// use. Call this first thing in main (and in TestMain), before any TLS.
//
// It returns a description of what it did, for a debug log, or an error
// when the bundle cannot be read or holds no certificate.
func AdoptCABundle() (string, error) {
	bundle := os.Getenv("AWS_CA_BUNDLE")
	if bundle == "" {
		return "", nil
	}
	pem, err := os.ReadFile(bundle)
	if err != nil {
		return "", fmt.Errorf("AWS_CA_BUNDLE: %w: point it at a PEM file or unset it", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return "", fmt.Errorf("AWS_CA_BUNDLE %s holds no PEM certificate: point it at a PEM file or unset it", bundle)
	}
	target := bundle
	if prev := os.Getenv("SSL_CERT_FILE"); prev != "" && prev != bundle {
		// Keep the roots the operator already chose and add the bundle.
		old, err := os.ReadFile(prev)
		if err != nil {
			return "", fmt.Errorf("SSL_CERT_FILE: %w", err)
		}
		dir, err := os.MkdirTemp("", "litefleet-ca-")
		if err != nil {
			return "", fmt.Errorf("combine CA bundles: %w", err)
		}
		target = filepath.Join(dir, "ca-bundle.pem")
		joined := bytes.Join([][]byte{old, pem}, []byte("\n"))
		if err := os.WriteFile(target, joined, 0o600); err != nil {
			return "", fmt.Errorf("combine CA bundles: %w", err)
		}
	}
	if err := os.Setenv("SSL_CERT_FILE", target); err != nil {
		return "", err
	}
	if err := os.Unsetenv("AWS_CA_BUNDLE"); err != nil {
		return "", err
	}
	return "AWS_CA_BUNDLE " + bundle + " added to the system roots", nil
}
