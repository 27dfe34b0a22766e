"""python -m flex.sandbox [--host 127.0.0.1] [--port 8100]"""

import argparse

from werkzeug.serving import run_simple

from .app import create_sandbox_app

parser = argparse.ArgumentParser(description="Local Flex sandbox simulator")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8100)
args = parser.parse_args()
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
    app.extensions["flex_sandbox"].webhooks.stop()
