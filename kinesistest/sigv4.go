package kinesistest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Credentials are a static access key pair.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
}

// Default credentials of Client, and of a server with VerifySignatures and no Credentials.
const (
	DefaultAccessKeyID     = "AKIDKINESISTEST"
	DefaultSecretAccessKey = "kinesistest-secret"
)

// Error codes of signature verification, as the service answers them.
const (
	CodeUnrecognizedClient = "UnrecognizedClientException"
	CodeInvalidSignature   = "InvalidSignatureException"
)

// amzDateFormat is the layout of the X-Amz-Date header, the signing time of SigV4.
const amzDateFormat = "20060102T150405Z"

var signer = v4.NewSigner()

// verifySignature recomputes the request's SigV4 signature with the server's credentials
// and compares it with the one the client sent. The request is rebuilt with only the
// headers the client listed as signed (its transport may add others afterwards, such as
// Accept-Encoding), and the payload hash is that of the body as received. The signing
// process is the one on
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html,
// computed by the SDK's own signer so that both sides agree on canonicalisation.
func (s *Server) verifySignature(r *http.Request, body []byte) *apiError {
	auth := r.Header.Get("Authorization")
	rest, _ := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	var cred, signedHeaders, sig string
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signedHeaders = v
		case "Signature":
			sig = v
		}
	}
	akid, _, _ := strings.Cut(cred, "/")
	if akid != s.creds.AccessKeyID {
		return errorf(CodeUnrecognizedClient, "The security token included in the request is invalid.")
	}
	signingTime, err := time.Parse(amzDateFormat, r.Header.Get("X-Amz-Date"))
	if err != nil {
		return errorf(CodeIncompleteSignature, "X-Amz-Date %q is not in the form %s", r.Header.Get("X-Amz-Date"), amzDateFormat)
	}
	u := &url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	req, err := http.NewRequestWithContext(context.Background(), r.Method, u.String(), nil)
	if err != nil {
		return errorf(CodeInvalidSignature, "rebuilding the request: %v", err)
	}
	req.Host = r.Host
	for h := range strings.SplitSeq(signedHeaders, ";") {
		switch h {
		case "host", "x-amz-date":
			// The signer sets both itself.
		case "content-length":
			req.ContentLength = int64(len(body))
		default:
			if vs := r.Header.Values(h); len(vs) > 0 {
				req.Header[http.CanonicalHeaderKey(h)] = vs
			}
		}
	}
	sum := sha256.Sum256(body)
	if err := signer.SignHTTP(context.Background(), aws.Credentials{
		AccessKeyID: s.creds.AccessKeyID, SecretAccessKey: s.creds.SecretAccessKey,
		SessionToken: r.Header.Get("X-Amz-Security-Token"),
	}, req, hex.EncodeToString(sum[:]), "kinesis", s.region, signingTime); err != nil {
		return errorf(CodeInvalidSignature, "computing the signature: %v", err)
	}
	want := req.Header.Get("Authorization")
	_, wantSig, _ := strings.Cut(want, "Signature=")
	_, wantSigned, _ := strings.Cut(want, "SignedHeaders=")
	wantSigned, _, _ = strings.Cut(wantSigned, ",")
	if wantSigned != signedHeaders || !hmac.Equal([]byte(wantSig), []byte(sig)) {
		return errorf(CodeInvalidSignature, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
	}
	return nil
}
