"""Getting logins into the pool: OAuth logins, importing the CLI's own login, switching.

pkce (PKCE and state values) · callback (the loopback redirect listener) · oauth (each
provider's authorize URL, code exchange and credential document, pure) · flows (running a
login: browser, device code, code paste) · pooldir (the pool directory as accounts) ·
importer (the CLIs' own files) · switch (``accounts use``) · remote (sending a login to a
remote trio-pool's management API).
"""
