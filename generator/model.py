"""The shop's catalog and money rules: customers, products, channels, prices. Pure and seeded.

Everything here is a value built from a seed, so the same seed always yields the same shop
(Faker is seeded per instance, never globally). Prices are Decimal with two places because
DynamoDB numbers travel through boto3 as Decimal and the lake stores decimal(12,2).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from faker import Faker

CURRENCY = "USD"
REGIONS = ("NA-EAST", "NA-WEST", "EU-CENTRAL", "EU-WEST", "APAC", "LATAM")
# Weights: a shop with most traffic from web and app.
CHANNELS = {"web": 45, "mobile_app": 35, "marketplace": 15, "store": 5}
PAYMENT_METHODS = {"card": 55, "paypal": 20, "apple_pay": 12, "bank_transfer": 8, "gift_card": 5}
# Discount rates offered (a rate 0..0.5 per the item contract); most orders pay full price.
DISCOUNTS = (Decimal("0.05"), Decimal("0.10"), Decimal("0.15"), Decimal("0.20"), Decimal("0.25"),
             Decimal("0.30"), Decimal("0.50"))
NO_DISCOUNT = Decimal("0.00")
CENT = Decimal("0.01")

# Category -> (lowest, highest) whole-dollar list price, and a few product nouns.
CATEGORIES: dict[str, tuple[int, int, tuple[str, ...]]] = {
    "Electronics": (19, 1499, ("Headphones", "Smartwatch", "Tablet", "Speaker", "Monitor", "Camera")),
    "Books": (4, 59, ("Novel", "Cookbook", "Biography", "Atlas", "Guide", "Anthology")),
    "Home & Kitchen": (9, 399, ("Blender", "Skillet", "Knife Set", "Lamp", "Kettle", "Rug")),
    "Apparel": (7, 199, ("Jacket", "Sneakers", "Hoodie", "Jeans", "Dress", "T-Shirt")),
    "Sports": (9, 499, ("Yoga Mat", "Tent", "Bicycle Helmet", "Dumbbells", "Backpack", "Racket")),
    "Beauty": (3, 89, ("Serum", "Shampoo", "Lipstick", "Moisturizer", "Perfume", "Face Mask")),
    "Toys": (4, 149, ("Puzzle", "Building Blocks", "Plush Bear", "Board Game", "Drone", "Doll")),
    "Grocery": (0, 49, ("Coffee Beans", "Olive Oil", "Green Tea", "Granola", "Honey", "Pasta")),
}
ADJECTIVES = ("Classic", "Pro", "Eco", "Deluxe", "Compact", "Premium", "Everyday", "Ultra", "Smart", "Mini")
PRICE_ENDINGS = (Decimal("0.99"), Decimal("0.49"), Decimal("0.95"), Decimal("0.00"))


@dataclass(frozen=True)
class Customer:
    customer_id: str
    name: str
    region: str


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    category: str
    unit_price: Decimal


@dataclass(frozen=True)
class Catalog:
    """Customers and products, with cumulative popularity weights so a few products sell most."""

    customers: tuple[Customer, ...]
    products: tuple[Product, ...]
    product_cum_weights: tuple[float, ...]


def order_total(quantity: int | Decimal, unit_price: Decimal, discount: Decimal) -> Decimal:
    """round(quantity * unit_price * (1 - discount), 2), half up: the contract's one formula."""
    return (Decimal(quantity) * unit_price * (1 - discount)).quantize(CENT, rounding=ROUND_HALF_UP)


def list_price(rng: random.Random, category: str) -> Decimal:
    """A realistic shelf price for the category: whole dollars in its range plus a .99-style ending."""
    low, high, _ = CATEGORIES[category]
    price = Decimal(rng.randint(low, high)) + rng.choice(PRICE_ENDINGS)
    return max(price, Decimal("0.99")).quantize(CENT)


def build_catalog(seed: int, customers: int = 1000, products_per_category: int = 30) -> Catalog:
    """The shop for `seed`: same seed, same customers, products and prices."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(f"catalog/{seed}")
    people = tuple(
        Customer(f"C-{i:06d}", fake.name(), rng.choice(REGIONS)) for i in range(1, customers + 1)
    )
    items: list[Product] = []
    for category in CATEGORIES:
        nouns = CATEGORIES[category][2]
        for _ in range(products_per_category):
            name = f"{fake.last_name()} {rng.choice(ADJECTIVES)} {rng.choice(nouns)}"
            items.append(Product(f"P-{len(items) + 1:05d}", name, category, list_price(rng, category)))
    rng.shuffle(items)
    # Zipf-like popularity: the k-th product sells about 1/k**0.8 as often as the first.
    weights = [1 / (rank**0.8) for rank in range(1, len(items) + 1)]
    return Catalog(people, tuple(items), tuple(itertools.accumulate(weights)))
