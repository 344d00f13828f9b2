package localcloud

// Deployment packages: finding the zip a deployed function runs (by its CodeSha256,
// in local build directories or in moto's S3) and unpacking it for the runtime.

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// codeDir returns the directory holding the deployment package whose base64 SHA-256
// is sha, unpacking it on first use.
func (g *Gateway) codeDir(ctx context.Context, region, sha, location string) (string, error) {
	g.codeMu.Lock()
	defer g.codeMu.Unlock()
	if dir, ok := g.codeDirs[sha]; ok {
		return dir, nil
	}
	pkg, where, err := g.findPackage(ctx, region, sha, location)
	if err != nil {
		return "", err
	}
	raw, _ := base64.StdEncoding.DecodeString(sha)
	dir := filepath.Join(g.workDir, hex.EncodeToString(raw))
	if err := unzip(pkg, dir); err != nil {
		return "", fmt.Errorf("unpacking %s: %w", where, err)
	}
	g.codeDirs[sha] = dir
	g.log.Info("code unpacked", "from", where, "codeSha256", sha, "dir", dir)
	return dir, nil
}

// findPackage finds the zip whose base64 SHA-256 is sha: in the local ZipDirs, then
// in moto's S3 under the key that GetFunction's Code.Location ends with (CDK asset
// buckets first), then in every .zip object of every bucket.
func (g *Gateway) findPackage(ctx context.Context, region, sha, location string) ([]byte, string, error) {
	for _, dir := range g.opts.ZipDirs {
		if pkg, where := g.findLocalZip(dir, sha); pkg != nil {
			return pkg, where, nil
		}
	}
	opt := func(o *s3.Options) { o.Region = region }
	lb, err := g.s3.ListBuckets(ctx, &s3.ListBucketsInput{}, opt)
	if err != nil {
		return nil, "", fmt.Errorf("listing moto's S3 buckets: %w", err)
	}
	var buckets []string
	for _, b := range lb.Buckets {
		buckets = append(buckets, aws.ToString(b.Name))
	}
	// CDK's asset buckets (cdk-hnb659fds-assets-ACCOUNT-REGION) hold deployed code.
	sort.SliceStable(buckets, func(i, j int) bool {
		return strings.Contains(buckets[i], "-assets-") && !strings.Contains(buckets[j], "-assets-")
	})
	key := ""
	if u, err := url.Parse(location); err == nil && strings.Contains(u.Host, "amazonaws.com") {
		key = strings.TrimPrefix(u.Path, "/")
	}
	if key != "" {
		for _, b := range buckets {
			if pkg, ok := g.s3Match(ctx, opt, b, key, "", sha); ok {
				return pkg, "s3://" + b + "/" + key, nil
			}
		}
	}
	for _, b := range buckets {
		p := s3.NewListObjectsV2Paginator(g.s3, &s3.ListObjectsV2Input{Bucket: aws.String(b)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx, opt)
			if err != nil {
				break // a bucket we cannot list holds nothing of ours
			}
			for _, o := range page.Contents {
				k := aws.ToString(o.Key)
				if !strings.HasSuffix(k, ".zip") || k == key {
					continue
				}
				if pkg, ok := g.s3Match(ctx, opt, b, k, aws.ToString(o.ETag), sha); ok {
					return pkg, "s3://" + b + "/" + k, nil
				}
			}
		}
	}
	return nil, "", fmt.Errorf("no deployment package with CodeSha256 %s in moto's S3 (%d buckets) or in %v", sha, len(buckets), g.opts.ZipDirs)
}

// s3Match downloads bucket/key and reports whether its hash is sha; hashes of objects
// already seen (by ETag) are remembered, so a scan downloads each object once.
func (g *Gateway) s3Match(ctx context.Context, opt func(*s3.Options), bucket, key, etag, sha string) ([]byte, bool) {
	cacheKey := "s3:" + bucket + "/" + key + "@" + etag
	if etag != "" {
		if h, ok := g.zipHashes[cacheKey]; ok && h != sha {
			return nil, false
		}
	}
	obj, err := g.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}, opt)
	if err != nil {
		return nil, false
	}
	defer obj.Body.Close()
	body, err := io.ReadAll(obj.Body)
	if err != nil {
		return nil, false
	}
	h := codeSHA256(body)
	if etag != "" {
		g.zipHashes[cacheKey] = h
	}
	return body, h == sha
}

// findLocalZip looks for a zip with hash sha under dir, two levels deep.
func (g *Gateway) findLocalZip(dir, sha string) ([]byte, string) {
	var found []byte
	var where string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || found != nil {
			return filepath.SkipDir
		}
		if d.IsDir() {
			if rel, _ := filepath.Rel(dir, path); strings.Count(rel, string(filepath.Separator)) >= 2 {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".zip") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		cacheKey := fmt.Sprintf("file:%s@%d@%d", path, info.Size(), info.ModTime().UnixNano())
		if h, ok := g.zipHashes[cacheKey]; ok && h != sha {
			return nil
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		h := codeSHA256(body)
		g.zipHashes[cacheKey] = h
		if h == sha {
			found, where = body, path
			return filepath.SkipAll
		}
		return nil
	})
	return found, where
}

// codeSHA256 is Lambda's CodeSha256 of a package: base64 of its SHA-256.
func codeSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// unzip writes the package's files under dir, keeping their modes.
func unzip(pkg []byte, dir string) error {
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".unzip-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, f := range zr.File {
		if !filepath.IsLocal(f.Name) {
			return fmt.Errorf("unsafe path %q in package", f.Name)
		}
		path := filepath.Join(tmp, f.Name)
		if f.FileInfo().IsDir() {
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		mode := f.Mode().Perm()
		if f.Name == "bootstrap" || mode == 0 {
			// Lambda runs bootstrap whatever mode the zip recorded.
			mode |= 0o755
		}
		if err := writeZipEntry(f, path, mode); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

func writeZipEntry(f *zip.File, path string, mode os.FileMode) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, rc); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
