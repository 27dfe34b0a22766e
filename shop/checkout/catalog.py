"""The products on sale. Prices are integer cents."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    description: str
    price_cents: int
    image: str  # file under static/products/


PRODUCTS = (
    Product("mug", "Flex Mug", "Stoneware, 350 ml. Holds coffee through any retry storm.", 1800,
            "mug.svg"),
    Product("tee", "Rescue Tee", "Soft organic cotton, printed with a very approved checkmark.",
            2900, "tee.svg"),
    Product("cap", "Decline-Proof Cap", "Six panels, one adjustable strap, zero soft declines.",
            2400, "cap.svg"),
    Product("notebook", "Ledger Notebook", "A5, dotted, 160 pages for double-entry thoughts.", 1200,
            "notebook.svg"),
    Product("stickers", "Sticker Pack", "Eight vinyl stickers for the laptop of a payments team.",
            600, "stickers.svg"),
    Product("tote", "Checkout Tote", "Heavy canvas tote that carries more than a shopping cart.",
            2200, "tote.svg"),
)

_BY_SKU = {product.sku: product for product in PRODUCTS}


def get(sku: str) -> Product | None:
    return _BY_SKU.get(sku)
