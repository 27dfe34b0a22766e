"""For every test: the suite brings its own settings and never reads a developer's `.env`
(which may point the shop at Flex's real sandbox). Servers the tests start inherit this."""

import os

os.environ["FLASK_SKIP_DOTENV"] = "1"
