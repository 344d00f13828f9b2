// Package userdata renders the start-up script of amifleet's base instance: the
// Amazon Linux 2023 user data that installs httpd, installs a boot-time unit that
// writes the page with the instance's own hostname, and powers the instance off so
// that the pipeline can image it.
package userdata

import (
	_ "embed"
	"encoding/base64"
	"fmt"
	"strings"
)

//go:embed userdata.sh
var script string

// templatePlaceholder is where Render puts the base64 of the page template. Base64
// has no character that a single-quoted shell string or a heredoc treats specially,
// so no template can inject shell.
const templatePlaceholder = "@AMIFLEET_PAGE_TEMPLATE_B64@"

// MaxSize is EC2's limit on user data, before base64 encoding.
const MaxSize = 16 * 1024

// PageWriterPath is where the user data installs the script that writes the page.
const PageWriterPath = "/usr/local/bin/amifleet-write-page"

// Render is the user data for a base instance whose page is pageTemplate, where
// {hostname} stands for the instance's hostname (HTML-escaped at every boot).
// It fails when the script would exceed EC2's 16 KiB user data limit.
func Render(pageTemplate string) (string, error) {
	out := strings.Replace(script, templatePlaceholder, base64.StdEncoding.EncodeToString([]byte(pageTemplate)), 1)
	if len(out) > MaxSize {
		return "", fmt.Errorf("user data would be %d bytes, over EC2's limit of %d: the page template (%d bytes) is too long", len(out), MaxSize, len(pageTemplate))
	}
	return out, nil
}

// The heredoc that carries the page writer in the rendered user data.
const (
	pageWriterStart = "<<'AMIFLEET_PAGE_WRITER'\n"
	pageWriterEnd   = "\nAMIFLEET_PAGE_WRITER\n"
)

// PageWriter is the page writer script exactly as the rendered user data installs it
// at PageWriterPath, for those who run it without a whole instance (the local cloud's
// guest OS stand-in, tests).
func PageWriter(userData string) (string, error) {
	i := strings.Index(userData, pageWriterStart)
	if i < 0 {
		return "", fmt.Errorf("no page writer in the user data")
	}
	body := userData[i+len(pageWriterStart):]
	j := strings.Index(body, pageWriterEnd)
	if j < 0 {
		return "", fmt.Errorf("the page writer's heredoc is not closed")
	}
	return body[:j+1], nil
}
