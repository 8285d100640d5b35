"""The dashboard's integration docs (API.md §11 v2, `/dashboard/docs`): three copyable snippets — create
an order (curl and Python), embed the SDK, verify a webhook — filled with this server's address
(`PAYGATE_PUBLIC_URL`) and the merchant's own publishable key.

The secret key and the webhook secrets cannot be shown: paygate keeps only a hash of one and derives
the other, and both were shown once. Their snippets carry a placeholder (`sk_test_…`, `whsec_…`) and the
page says so. Every snippet is run as shown by the tests (tests/e2e/test_docs_snippets.py,
tests/browser/test_browser_docs.py), with only the placeholders filled in.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.responses import Response

from paygate.http.context import gateway
from paygate.store import merchants
from paygate.web import auth
from paygate.web.render import html

router = APIRouter(include_in_schema=False)

SECRET_KEY_PLACEHOLDER = "sk_test_…"
WEBHOOK_SECRET_PLACEHOLDER = "whsec_…"
PUBLISHABLE_KEY_PLACEHOLDER = "pk_test_…"
ORDER_ID_PLACEHOLDER = "ord_…"
RECEIVER_PORT = 8000


@dataclass(frozen=True)
class Snippets:
    create_order_curl: str
    create_order_python: str
    sdk: str
    webhook: str


def snippets(public_url: str, publishable_key: str | None) -> Snippets:
    """The page's snippets for a server at `public_url` and a merchant's publishable key (a placeholder when
    paygate does not have it in full: keys made before it kept them)."""
    url = public_url.rstrip("/")
    pk = publishable_key or PUBLISHABLE_KEY_PLACEHOLDER
    curl = f"""# Your secret key: shown once, when your account was created (this page cannot show it).
export PAYGATE_API_KEY="{SECRET_KEY_PLACEHOLDER}"

curl -sS {url}/v1/orders \\
  -u "$PAYGATE_API_KEY:" \\
  -H "Content-Type: application/json" \\
  -d '{{"amount": 5000, "currency": "USD", "receipt": "order-1000"}}'
"""
    python = f"""import httpx  # pip install httpx

SECRET_KEY = "{SECRET_KEY_PLACEHOLDER}"  # your secret key: keep it on your server, never in a web page

response = httpx.post(
    "{url}/v1/orders",
    auth=(SECRET_KEY, ""),
    # the same key on a retry returns the same order instead of creating a second one
    headers={{"Idempotency-Key": "order-1001"}},
    json={{"amount": 5000, "currency": "USD", "receipt": "order-1001"}},
)
response.raise_for_status()
order = response.json()
print(order["id"], order["checkout_url"])
"""
    sdk = f"""<script src="{url}/sdk/paygate.js"></script>
<button id="pay-button" type="button">Pay</button>
<script>
  const paygate = new Paygate({{ key: "{pk}" }});
  document.getElementById("pay-button").addEventListener("click", () => {{
    paygate.checkout({{
      orderId: "{ORDER_ID_PLACEHOLDER}",  // created by your server (above)
      onSuccess: ({{ paymentId }}) => {{ window.location.href = "/thank-you?payment=" + paymentId; }},
      onFailure: ({{ error }}) => {{ console.warn("payment failed; the customer may try again", error); }},
      onClose: () => {{ console.log("checkout closed"); }},
    }});
  }});
</script>
"""
    webhook = f"""from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks import Webhook, WebhookVerificationError  # pip install standardwebhooks

WEBHOOK_SECRET = "{WEBHOOK_SECRET_PLACEHOLDER}"  # your endpoint's secret, shown when you created or rotated it
PORT = {RECEIVER_PORT}


class PaygateWebhook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            event = Webhook(WEBHOOK_SECRET).verify(body, dict(self.headers))
        except WebhookVerificationError:
            self.send_response(400)  # not signed by paygate with your secret: ignore it
            self.end_headers()
            return
        # webhook-id is the event id, the same on every retry: use it to handle each event once
        print("verified", event["type"], event["id"], flush=True)
        self.send_response(200)
        self.end_headers()


HTTPServer(("127.0.0.1", PORT), PaygateWebhook).serve_forever()
"""
    return Snippets(curl, python, sdk, webhook)


@router.get("/dashboard/docs")
async def docs(request: Request) -> Response:
    session = await auth.current(request)
    if session is None:
        return auth.to_login(request)
    gw = gateway(request)
    async with gw.pool.connection() as conn:
        pk = await merchants.publishable_key(conn, session.merchant_id)
    return html("dashboard/docs.html", session=session, csrf_token=session.csrf_token, nav="docs",
                snippets=snippets(gw.settings.public_url, pk), public_url=gw.settings.public_url.rstrip("/"),
                publishable_key=pk, secret_placeholder=SECRET_KEY_PLACEHOLDER,
                webhook_placeholder=WEBHOOK_SECRET_PLACEHOLDER, order_placeholder=ORDER_ID_PLACEHOLDER)
