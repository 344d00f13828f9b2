#!/bin/bash
# amifleet user data for the base instance (Amazon Linux 2023). It installs httpd,
# installs a unit that writes the page with the instance's own hostname at every
# boot (so replicas launched from the AMI show their own name), and powers off:
# the pipeline images the stopped instance. Any failure stops the script with the
# instance still running, which the pipeline reports with this console output.
set -euo pipefail
trap 'echo "amifleet: user data failed at line $LINENO" >&2' ERR

echo "amifleet: installing httpd"
dnf install -y httpd

echo "amifleet: installing the page writer"
install -d -m 0755 /usr/local/bin
cat > /usr/local/bin/amifleet-write-page <<'AMIFLEET_PAGE_WRITER'
#!/bin/bash
# Writes the amifleet page, with this instance's hostname, to
# $AMIFLEET_ROOT/var/www/html/index.html. amifleet-page.service runs it at every boot.
set -euo pipefail

root="${AMIFLEET_ROOT:-/}"
# The page template, base64-encoded so that no character of it reaches the shell.
template_b64='@AMIFLEET_PAGE_TEMPLATE_B64@'

# The instance metadata service; AWS_EC2_METADATA_SERVICE_ENDPOINT overrides its
# address, as it does for the AWS SDKs and CLI.
imds="${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254/}"
imds="${imds%/}/latest"
curl_opts=(--silent --show-error --fail --connect-timeout 2 --max-time 5 --retry 5 --retry-connrefused)

instance_hostname() {
  local token name
  # IMDSv2 only: every metadata read carries a session token.
  if token="$(curl "${curl_opts[@]}" -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$imds/api/token")" &&
    name="$(curl "${curl_opts[@]}" -H "X-aws-ec2-metadata-token: $token" "$imds/meta-data/local-hostname")" &&
    [ -n "$name" ]; then
    printf '%s' "$name"
    return
  fi
  hostname -f 2>/dev/null || hostname
}

html_escape() {
  sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g' -e "s/'/\&#39;/g"
}

host="$(instance_hostname | html_escape)"
# The x keeps the template's trailing newlines, which $(...) would strip.
template="$(printf '%s' "$template_b64" | base64 -d; printf x)"
template="${template%x}"
# Quoted pattern and replacement: matched literally, and & in the hostname stays &.
page="${template//"{hostname}"/"$host"}"

dir="$root/var/www/html"
install -d -m 0755 "$dir"
printf '%s' "$page" >"$dir/index.html.tmp"
chmod 0644 "$dir/index.html.tmp"
mv -f "$dir/index.html.tmp" "$dir/index.html"
AMIFLEET_PAGE_WRITER
chmod 0755 /usr/local/bin/amifleet-write-page

cat > /etc/systemd/system/amifleet-page.service <<'AMIFLEET_UNIT'
[Unit]
Description=Write the amifleet page with this instance's hostname
Wants=network-online.target
After=network-online.target
Before=httpd.service

[Service]
Type=oneshot
ExecStart=/usr/local/bin/amifleet-write-page
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
AMIFLEET_UNIT

systemctl daemon-reload
systemctl enable httpd.service amifleet-page.service

# Run it once now: a page writer that fails here leaves the instance running, and
# the pipeline reports it, instead of imaging a broken instance.
/usr/local/bin/amifleet-write-page

echo "amifleet: provisioned, powering off for imaging"
systemctl poweroff --no-block
