from shop.cart import Cart, Item


def test_total() -> None:
    cart = Cart()
    cart.add(Item("apple", 50, 2))
    assert cart.total_cents() == 100
