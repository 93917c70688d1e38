# Debian packages pkictl needs, installed with apt-get when missing (needs root, as on CI and dev machines).
# Sourced by scripts/test (everything below) and by scripts/demo with PKI_SYSTEM=demo (only what the demo
# uses: SoftHSM2 for the demo USB key, openssl).
need=()
# SoftHSM2 (the real token, the demo USB key) and openssl (a judge; pkictl's access-check verifies with it).
[ -e /usr/lib/softhsm/libsofthsm2.so ] || need+=(softhsm2)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ "${PKI_SYSTEM:-test}" = test ]; then
  # OpenSC: pkcs11-tool, the independent judge of what is on a token.
  command -v pkcs11-tool >/dev/null 2>&1 || need+=(opensc)
  # The browser tests: Debian's chromium driven by Playwright, and a CJK font (else every 汉字 is a box).
  [ -x /usr/bin/chromium ] || need+=(chromium)
  fc-list 2>/dev/null | grep -qi "noto.*cjk" || need+=(fonts-noto-cjk)
  # Relying parties as judges (tests/judges/test_relying_parties.py): nginx verifying client certificates,
  # curl presenting one whose key stays on a SoftHSM2 token through libp11's OpenSSL engine.
  [ -x /usr/sbin/nginx ] || need+=(nginx)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  [ -e "/usr/lib/$(uname -m)-linux-gnu/engines-3/pkcs11.so" ] || need+=(libengine-pkcs11-openssl)
  # A USB key with its user PIN locked (SoftHSM2 never locks one): tests/support/pin_locked_pkcs11.c,
  # compiled by the tests with gcc against p11-kit's pkcs11.h.
  command -v gcc >/dev/null 2>&1 || need+=(gcc)
  [ -e /usr/include/p11-kit-1/p11-kit/pkcs11.h ] || need+=(libp11-kit-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing system packages: ${need[*]} (install them with your package manager)" >&2
    exit 1
  fi
  echo "installing ${need[*]} …"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
