"""python -m flex_sandbox [--host 127.0.0.1] [--port 8100]"""

import argparse

from werkzeug.serving import run_simple

from .app import create_sandbox_app

parser = argparse.ArgumentParser(prog="python -m flex_sandbox",
                                 description="Local Flex sandbox simulator")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8100)
parser.add_argument("--url-file", help="run as a shared sandbox: publish its URL in this file, "
                    "locked while it runs (see flex_sandbox/shared.py)")
parser.add_argument("--exit-when-unused", metavar="USERS_FILE",
                    help="with --url-file: exit once no process holds a lock on USERS_FILE")
parser.add_argument("--unused-grace", type=float,
                    help="seconds USERS_FILE stays unheld before the sandbox exits "
                    "(default: shared.UNUSED_GRACE)")
args = parser.parse_args()
if args.url_file:
    from .shared import serve_shared

    raise SystemExit(serve_shared(args.host, args.port, args.url_file, args.exit_when_unused,
                                  args.unused_grace))
app = create_sandbox_app()
settings = app.extensions["flex_sandbox"].settings
print(f"Flex sandbox simulator at http://{args.host}:{args.port}/v1\n"
      f"  FLEX_API_URL=http://{args.host}:{args.port}/v1\n"
      f"  FLEX_APP_KEY={settings['app_key']}\n"
      f"  FLEX_APP_SECRET={settings['app_secret']}\n"
      f"  FLEX_MID={settings['mid']}\n"
      f"  FLEX_SITE_ID={settings['site_id']}\n"
      f"  FLEX_TOKENIZATION_KEY={settings['tokenization_key']}\n"
      f"  FLEX_SENSEJS_URL=http://{args.host}:{args.port}/widget.js", flush=True)
try:
    run_simple(args.host, args.port, app, threaded=True)
finally:
    app.extensions["flex_sandbox"].stop()
