"""deploy/: the systemd unit, the sysusers snippet and install.sh.

- `systemd-analyze verify` finds nothing wrong with deploy/lambdad.service
  (a copy whose ExecStart names the built lambdad, since /usr/local/bin
  need not hold one here; the original may only miss that binary);
- `systemd-analyze security --offline=true` rates it at most EXPOSURE_MAX
  (the README's verdict) and every hardening setting we rely on is met;
- deploy/install.sh --destdir, run twice, installs the binaries, the unit,
  the sysusers snippet (creating the user in DESTDIR/etc/passwd) and the
  config, which passes --check-config and is never overwritten;
- the production config also passes with its commented-out http settings
  (auth, TLS, CORS) turned on.

systemd-analyze comes with Debian's `systemd` package (scripts/deps.sh);
no running systemd is needed. The binaries come from the build of LAMBDAD.
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEPLOY = os.path.join(REPO, "deploy")
UNIT = os.path.join(DEPLOY, "lambdad.service")
LAMBDAD = os.path.abspath(os.environ.get("LAMBDAD", "build/daemon/lambdad"))
BUILD_DIR = os.path.dirname(os.path.dirname(LAMBDAD))
EXEC_START = "ExecStart=/usr/local/bin/lambdad -c /etc/lambdad/lambdad.json"
EXPOSURE_MAX = 1.1   # README: "Overall exposure level for lambdad.service: 1.1 OK"

# Settings whose line in `security` must read ✓: the unit's hardening.
MUST_PASS = [
    "User=/DynamicUser=", "NoNewPrivileges=", "AmbientCapabilities=", "ProtectSystem=",
    "ProtectHome=", "PrivateTmp=", "PrivateDevices=", "PrivateUsers=", "ProtectKernelTunables=",
    "ProtectKernelModules=", "ProtectKernelLogs=", "ProtectControlGroups=", "ProtectClock=",
    "ProtectHostname=", "ProtectProc=", "ProcSubset=", "RestrictRealtime=",
    "RestrictSUIDSGID=", "LockPersonality=", "MemoryDenyWriteExecute=",
    "SystemCallArchitectures=", "SystemCallFilter=~@privileged", "SystemCallFilter=~@resources",
    "SystemCallFilter=~@mount", "SystemCallFilter=~@debug", "RestrictNamespaces=~user",
    "RestrictAddressFamilies=~AF_PACKET", "RestrictAddressFamilies=~AF_NETLINK",
    "RestrictAddressFamilies=~…", "CapabilityBoundingSet=~CAP_SYS_ADMIN",
    "CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)", "RemoveIPC=", "UMask=",
    "KeyringMode=", "NotifyAccess=", "Delegate=", "PrivateMounts=",
]


def analyze(*args):
    exe = shutil.which("systemd-analyze")
    if not exe:
        raise AssertionError("systemd-analyze is missing: install Debian's 'systemd' package "
                             "(scripts/deps.sh does)")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


class UnitTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lambdad-e2e-deploy-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_verify(self):
        with open(UNIT) as f:
            text = f.read()
        self.assertEqual(len(re.findall(r"^ExecStart=.*$", text, re.M)), 1)
        self.assertIn("\n" + EXEC_START + "\n", text)
        # The same unit with a binary that exists: not one complaint.
        copy = os.path.join(self.tmp, "lambdad.service")
        with open(copy, "w") as f:
            f.write(text.replace(EXEC_START, EXEC_START.replace("/usr/local/bin/lambdad",
                                                                LAMBDAD)))
        r = analyze("verify", "--man=no", copy)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
        # The original: at most the missing /usr/local/bin/lambdad.
        r = analyze("verify", "--man=no", UNIT)
        if os.access("/usr/local/bin/lambdad", os.X_OK):
            self.assertEqual((r.returncode, r.stderr), (0, ""))
        else:
            self.assertEqual(r.stderr, "lambdad.service: Command /usr/local/bin/lambdad is not "
                                       "executable: No such file or directory\n")

    def test_security(self):
        r = analyze("security", "--offline=true", "--no-pager", UNIT)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r"Overall exposure level for lambdad\.service: (\d+\.\d) (\w+)", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        self.assertLessEqual(float(m.group(1)), EXPOSURE_MAX, r.stdout)
        self.assertEqual(m.group(2), "OK")
        verdicts = {}
        for line in r.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in ("✓", "✗"):
                verdicts[parts[1]] = parts[0]
        for name in MUST_PASS:
            self.assertEqual(verdicts.get(name), "✓", "%s in:\n%s" % (name, r.stdout))
        # --threshold counts tenths: more than EXPOSURE_MAX fails.
        r = analyze("security", "--offline=true", "--no-pager",
                    "--threshold=%d" % round(EXPOSURE_MAX * 10), UNIT)
        self.assertEqual(r.returncode, 0, r.stdout)


class ConfigTest(unittest.TestCase):
    def test_optional_http_settings(self):
        tmp = tempfile.mkdtemp(prefix="lambdad-e2e-deploy-")
        try:
            with open(os.path.join(tmp, "token"), "w") as f:
                f.write("s3cret\n")
            r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                                "-days", "2", "-subj", "/CN=127.0.0.1",
                                "-keyout", os.path.join(tmp, "key.pem"),
                                "-out", os.path.join(tmp, "cert.pem")],
                               capture_output=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(DEPLOY, "lambdad.json")) as f:
                text = f.read()
            on = re.sub(r'^    // ("auth"|"tls"|"cors_origin")', r'    \1', text, flags=re.M)
            self.assertEqual(len(re.findall(r'^    ("auth"|"tls"|"cors_origin"):', on, re.M)), 3)
            conf = os.path.join(tmp, "lambdad.json")
            with open(conf, "w") as f:
                f.write(on.replace("/etc/lambdad/", tmp + "/").replace("/var/lib/lambdad/", tmp + "/"))
            r = subprocess.run([LAMBDAD, "-c", conf, "--check-config"], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual((r.returncode, r.stdout, r.stderr),
                             (0, "%s: OK (1 stream(s), 3 view(s))\n" % conf, ""))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class InstallTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="lambdad-e2e-install-")

    def tearDown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def install(self):
        r = subprocess.run([os.path.join(DEPLOY, "install.sh"), "--build-dir", BUILD_DIR,
                            "--no-build", "--destdir", self.root],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def path(self, p):
        return os.path.join(self.root, p.lstrip("/"))

    def read(self, p):
        with open(self.path(p)) as f:
            return f.read()

    def test_install_twice(self):
        out = self.install()
        for exe in ("lambdad", "lambdad-archive", "lambdad-devbroker", "lambdad-gen"):
            self.assertTrue(os.access(self.path("/usr/local/bin/" + exe), os.X_OK), exe)
        with open(UNIT) as f:
            self.assertEqual(self.read("/usr/local/lib/systemd/system/lambdad.service"), f.read())
        with open(os.path.join(DEPLOY, "lambdad.sysusers")) as f:
            self.assertEqual(self.read("/usr/local/lib/sysusers.d/lambdad.conf"), f.read())
        users = [l for l in self.read("/etc/passwd").splitlines() if l.startswith("lambdad:")]
        self.assertEqual(len(users), 1, users)
        self.assertRegex(users[0], r"^lambdad:x:\d+:\d+:[^:]*:/var/lib/lambdad:/usr/sbin/nologin$")
        conf = "/etc/lambdad/lambdad.json"
        with open(os.path.join(DEPLOY, "lambdad.json")) as f:
            self.assertEqual(self.read(conf), f.read())
        self.assertEqual(os.stat(self.path(conf)).st_mode & 0o777, 0o640)
        # checked with the state directory, made by install.sh, mapped into DESTDIR
        self.assertIn("checking %s with /var/lib/lambdad/ read as %s/:\n/dev/stdin: OK "
                      "(1 stream(s), 3 view(s))\n" % (conf, self.path("/var/lib/lambdad")), out)
        self.assertEqual(os.stat(self.path("/var/lib/lambdad")).st_mode & 0o777, 0o700)
        self.assertIn("sudo systemctl enable --now lambdad", out)
        self.assertNotIn("systemctl daemon-reload", out)   # no systemd under --destdir

        # Again, after the operator edited the config: it is kept as it is.
        with open(self.path(conf), "a") as f:
            f.write("// edited by the operator\n")
        edited = self.read(conf)
        out = self.install()
        self.assertIn("kept the existing /etc/lambdad/lambdad.json", out)
        self.assertEqual(self.read(conf), edited)
        users = [l for l in self.read("/etc/passwd").splitlines() if l.startswith("lambdad:")]
        self.assertEqual(len(users), 1, users)

    def test_refuses_other_prefix(self):
        build = os.path.join(self.root, "build")
        r = subprocess.run(["meson", "setup", build, REPO, "--prefix=/opt/lambdad"],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = subprocess.run([os.path.join(DEPLOY, "install.sh"), "--build-dir", build,
                            "--no-build", "--destdir", os.path.join(self.root, "stage")],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not install /usr/local/bin/lambdad", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.root, "stage", "usr")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
