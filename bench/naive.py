"""The integration done naively, for comparison only: vault AFTER the authorization, and
/transmit inline before answering the shopper. Never copy this."""

from __future__ import annotations

from app import create_app as create_shop
from flex import payloads
from flex.cit import PAID, CitFlow, CitResult


class NaiveCitFlow(CitFlow):
    def pay(self, purchase, card, authorize) -> CitResult:
        processor = authorize(card, purchase.amount_cents)
        vaulted = self.client.tokenize(card, email=purchase.email,
                                       sense_key=purchase.sense_key, ref=purchase.order_id)
        if not processor.approved:
            body = payloads.evaluate_body(purchase, card.summary, vaulted.token, processor,
                                          mid=self.client.config.mid,
                                          idempotency_key=purchase.order_id)
            return self._evaluate(purchase.order_id, processor, card.summary, body)
        self.client.transmit(payloads.transmit_body(purchase, card.summary, processor,
                                                    mid=self.client.config.mid),
                             ref=purchase.order_id)
        return CitResult(PAID, processor, card.summary)


def create_app():
    app = create_shop()
    services = app.extensions["services"]
    services.flow = NaiveCitFlow(services.client)
    return app
