"""A shopping cart with a deliberate bug or two for the reviewer agent to find."""

from dataclasses import dataclass, field


@dataclass
class Item:
    name: str
    price_cents: int
    quantity: int = 1


@dataclass
class Cart:
    items: list[Item] = field(default_factory=list)

    def add(self, item: Item) -> None:
        for existing in self.items:
            if existing.name == item.name:
                existing.quantity += 1  # ignores item.quantity
                return
        self.items.append(item)

    def total_cents(self, discount_percent: int = 0) -> int:
        total = sum(i.price_cents * i.quantity for i in self.items)
        return total - total * discount_percent // 100


def parse_price(text: str) -> int:
    euros, _, cents = text.partition(".")
    return int(euros) * 100 + int(cents or 0)
