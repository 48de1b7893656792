"""Browser tests of the web UI: the real daemon (two of them: one open,
one with http.auth protect=all) against lambdad-devbroker, and headless
Debian chromium driven by playwright-core (ui_driver.mjs, which checks
what the page shows against the HTTP API). Screenshots are saved in the
meson build dir (ARTIFACTS); with DOCS=dir they are also written there
(the README's docs/ui-light.png and docs/ui-dark.png come from this test).

Needs chromium and the npm packages of tests/browser (scripts/deps.sh
installs both)."""
import json
import math
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from harness import Daemon, Devbroker, Workdir, produce  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
STREAM = [{"name": "pageviews", "topic": "pageviews", "time_field": "ts"}]
VIEWS = [{"name": "pages", "stream": "pageviews", "granularity": "second",
          "dimensions": ["country", "page"],
          "metrics": [{"name": "views", "type": "count"},
                      {"name": "bytes", "type": "sum", "field": "bytes"},
                      {"name": "ms", "type": "quantiles", "field": "ms"}]},
         {"name": "sizes", "stream": "pageviews", "granularity": "minute",
          "dimensions": ["page"], "metrics": [{"name": "bytes", "type": "sum", "field": "bytes"}]}]
TOKEN = "s3cret-token-for-the-ui"


def main():
    for need, what in [(CHROMIUM, "chromium"), (os.path.join(HERE, "node_modules", "playwright-core"),
                                                 "tests/browser/node_modules (npm ci)")]:
        if not os.path.exists(need):
            print("missing %s: run scripts/deps.sh" % what)
            return 1
    artifacts = os.environ.get("ARTIFACTS") or os.path.join(os.getcwd(), "browser-artifacts")
    os.makedirs(artifacts, exist_ok=True)
    wd = Workdir("ui")
    broker = Devbroker(["pageviews:2"])
    daemons = []
    failed = True
    try:
        token_file = wd.file("token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        d = Daemon(wd, broker.bootstrap, streams=STREAM, views=VIEWS).start()
        daemons.append(d)
        locked = Daemon(wd, broker.bootstrap, streams=STREAM, views=VIEWS, name="locked",
                        extra={"kafka": {"group_id": "locked"},
                               "http": {"auth": {"token_file": token_file, "protect": "all"}}}).start()
        daemons.append(locked)
        # 10 minutes of events up to now: inside the UI's default range
        # (the last 15 minutes)
        # a traffic wave over the last 10 minutes (inside the UI's default
        # range, the last 15); countries 3:2:1
        now = int(time.time())
        events = []
        for s in range(600):
            for _ in range(1 + round(2 + 2 * math.sin(s / 45))):
                k = len(events)
                events.append(json.dumps({"ts": now - 600 + s, "country": "DE DE DE FR FR US".split()[k % 6],
                                          "page": ["/", "/docs", "/pricing"][k % 3], "bytes": 500 + k % 700,
                                          "ms": 5 + (k * 7) % 90}))
        produce(broker.bootstrap, "pageviews", events)
        d.wait_archived(len(events))
        env = dict(os.environ, UI_URL="http://127.0.0.1:%d" % d.port,
                   UI_AUTH_URL="http://127.0.0.1:%d" % locked.port, UI_TOKEN=TOKEN,
                   BOOTSTRAP=broker.bootstrap, TOPIC="pageviews", ARTIFACTS=artifacts,
                   CHROMIUM=CHROMIUM)
        r = subprocess.run(["node", os.path.join(HERE, "ui_driver.mjs")], env=env, timeout=240)
        print("screenshots in %s" % artifacts)
        failed = r.returncode != 0
    finally:
        for dm in daemons:
            rc = dm.stop()
            if rc != 0:   # a sanitizer's report, too
                print("lambdad exited with %s" % rc)
                failed = True
        if failed:
            for dm in daemons:
                print("---- %s log:\n%s" % (dm.config_path, dm.logtext()[-3000:]))
        broker.stop()
        wd.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
