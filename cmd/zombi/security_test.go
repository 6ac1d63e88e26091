package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zombihq/zombi/httpd"
)

const (
	cliWriteTok = "cli-write-0123456789abcdef"
	cliReadTok  = "cli-read-0123456789abcdef"
)

func TestAuthTokensSetting(t *testing.T) {
	load := func(v string) (config, error) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		return loadConfig(fs, nil, env(map[string]string{"ZOMBI_AUTH_TOKENS": v}))
	}
	c, err := load(cliWriteTok + ":write," + cliReadTok + ":read")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.AuthTokens) != 2 || c.AuthTokens[0] != (httpd.Token{Secret: cliWriteTok, Role: httpd.RoleWrite}) {
		t.Fatalf("tokens %+v", c.AuthTokens)
	}
	// From a file.
	file := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(file, []byte("# producers\n"+cliWriteTok+":write\n\n"+cliReadTok+":admin\n"), 0o600)
	if c, err = load("@" + file); err != nil || len(c.AuthTokens) != 2 || c.AuthTokens[1].Role != httpd.RoleAdmin {
		t.Fatalf("token file: %+v %v", c.AuthTokens, err)
	}
	// Off by default.
	if c, err = load(""); err != nil || c.AuthTokens != nil {
		t.Fatalf("default: %+v %v", c.AuthTokens, err)
	}
	// Invalid values are start-up errors that never quote a token.
	for _, bad := range []string{cliWriteTok + ":root", "short:read", cliWriteTok, cliWriteTok + ":read," + cliWriteTok + ":write"} {
		_, err := load(bad)
		if err == nil {
			t.Fatalf("%q accepted", bad)
		}
		if strings.Contains(err.Error(), "cli-write") || strings.Contains(err.Error(), "short") {
			t.Fatalf("the error quotes a token: %v", err)
		}
		if !strings.Contains(err.Error(), "ZOMBI_AUTH_TOKENS") || !strings.Contains(err.Error(), "<redacted>") {
			t.Fatalf("error %v", err)
		}
	}
	if _, err := load("@" + filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "token file") {
		t.Fatalf("missing token file: %v", err)
	}
	os.WriteFile(file, []byte("# nothing yet\n"), 0o600)
	if _, err := load("@" + file); err == nil {
		t.Fatal("a token file without tokens was accepted")
	}
}

func TestTLSSettings(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	load := func(m map[string]string) error {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		_, err := loadConfig(fs, nil, env(m))
		return err
	}
	if err := load(map[string]string{"ZOMBI_TLS_CERT": cert, "ZOMBI_TLS_KEY": key}); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]map[string]string{
		"cert only":    {"ZOMBI_TLS_CERT": cert},
		"key only":     {"ZOMBI_TLS_KEY": key},
		"missing cert": {"ZOMBI_TLS_CERT": filepath.Join(dir, "nope"), "ZOMBI_TLS_KEY": key},
		"swapped":      {"ZOMBI_TLS_CERT": key, "ZOMBI_TLS_KEY": cert},
	} {
		if err := load(m); err == nil || !strings.Contains(err.Error(), "tls-key") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestServeTLSWithTokens runs `zombi serve` with HTTPS and tokens: the
// settings reach the server, and the log names neither token.
func TestServeTLSWithTokens(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	e := env(map[string]string{"ZOMBI_HOST": "127.0.0.1", "ZOMBI_PORT": "0", "ZOMBI_DATA_DIR": filepath.Join(dir, "data"),
		"ZOMBI_FSYNC": "never", "ZOMBI_TLS_CERT": cert, "ZOMBI_TLS_KEY": key, "ZOMBI_LOG_LEVEL": "debug",
		"ZOMBI_AUTH_TOKENS": cliWriteTok + ":write"})
	var logs bytes.Buffer
	addrCh := make(chan string, 1)
	var stop func()
	done := make(chan int, 1)
	go func() {
		done <- serve(nil, io.Discard, &logs, e, func(addr string, s func()) { stop = s; addrCh <- addr })
	}()
	var addr string
	select {
	case addr = <-addrCh:
	case code := <-done:
		t.Fatalf("serve exited %d: %s", code, logs.String())
	}
	certPEM, _ := os.ReadFile(cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	post := func(tok string) int {
		req, _ := http.NewRequest("POST", "https://"+addr+"/tables/events", strings.NewReader(`{"payload":"hi"}`))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		r, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return r.StatusCode
	}
	if st := post(cliWriteTok); st != 202 {
		t.Fatalf("write with the token: %d", st)
	}
	if st := post(""); st != 401 {
		t.Fatalf("write without a token: %d", st)
	}
	if st := post(cliReadTok); st != 401 {
		t.Fatalf("write with an unknown token: %d", st)
	}
	stop()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(logs.String(), "tls=true") || !strings.Contains(logs.String(), "auth_tokens=1") {
		t.Fatalf("start-up log: %s", logs.String())
	}
	if strings.Contains(logs.String(), cliWriteTok) || strings.Contains(logs.String(), cliReadTok) {
		t.Fatalf("a token is in the log: %s", logs.String())
	}
}

func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}
