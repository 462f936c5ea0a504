"""τ²-bench's retail domain: users, products and orders, and the tools an agent changes them with.
Re-implemented from the domain's policy and data; semantics follow τ²-bench's tools (including its
quirk that a multi-item modification prices every item at the last new variant)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from troupe.evals.tau2.domains.common import Db, TauToolError, calculate, dump, transfer_to_human_agents


def _order(db: Db, order_id: str) -> dict[str, Any]:
    if order_id not in db["orders"]:
        raise TauToolError("Order not found")
    return db["orders"][order_id]


def _user(db: Db, user_id: str) -> dict[str, Any]:
    if user_id not in db["users"]:
        raise TauToolError("User not found")
    return db["users"][user_id]


def _variant(db: Db, product_id: str, item_id: str) -> dict[str, Any]:
    if product_id not in db["products"]:
        raise TauToolError("Product not found")
    variants = db["products"][product_id]["variants"]
    if item_id not in variants:
        raise TauToolError("Variant not found")
    return variants[item_id]


def _method(db: Db, user_id: str, payment_method_id: str) -> dict[str, Any]:
    user = _user(db, user_id)
    if payment_method_id not in user["payment_methods"]:
        raise TauToolError("Payment method not found")
    return user["payment_methods"][payment_method_id]


def _items_present(order: dict[str, Any], item_ids: list[str], message: str) -> None:
    have = [item["item_id"] for item in order["items"]]
    for item_id in item_ids:
        if item_ids.count(item_id) > have.count(item_id):
            raise TauToolError(message.format(item_id=item_id))


def _price_difference(db: Db, order: dict[str, Any], item_ids: list[str], new_item_ids: list[str],
                      forbid_same: bool) -> tuple[float, dict[str, Any] | None]:
    if len(item_ids) != len(new_item_ids):
        raise TauToolError("The number of items to be exchanged should match")
    diff, variant = 0.0, None
    for item_id, new_id in zip(item_ids, new_item_ids, strict=True):
        if forbid_same and item_id == new_id:
            raise TauToolError("The new item id should be different from the old item id")
        item = next((i for i in order["items"] if i["item_id"] == item_id), None)
        if item is None:
            raise TauToolError(f"Item {item_id} not found")
        variant = _variant(db, item["product_id"], new_id)
        if not variant["available"]:
            raise TauToolError(f"New item {new_id} not found or available")
        diff += variant["price"] - item["price"]
    return diff, variant


def _address(address1: str, address2: str, city: str, state: str, country: str, zip: str) -> dict[str, str]:
    return {"address1": address1, "address2": address2, "city": city, "country": country, "state": state,
            "zip": zip}


def cancel_pending_order(db: Db, order_id: str, reason: str) -> str:
    """Cancel a pending order. If the order is already processed or delivered, it cannot be cancelled. The agent needs to explain the cancellation detail and ask for explicit user confirmation (yes/no) to proceed. If the user confirms, the order status will be changed to 'cancelled' and the payment will be refunded. The refund will be added to the user's gift card balance immediately if the payment was made using a gift card, otherwise the refund would take 5-7 business days to process.

    Args:
        order_id: The order id, such as '#W0000000'. Be careful there is a '#' symbol at the beginning of the order id.
        reason: The reason for cancellation, which should be either 'no longer needed' or 'ordered by mistake'.
    """
    order = _order(db, order_id)
    if order["status"] != "pending":
        raise TauToolError("Non-pending order cannot be cancelled")
    if reason not in ("no longer needed", "ordered by mistake"):
        raise TauToolError("Invalid reason")
    refunds = []
    for payment in order["payment_history"]:
        pid = payment["payment_method_id"]
        refunds.append({"transaction_type": "refund", "amount": payment["amount"], "payment_method_id": pid})
        method = _method(db, order["user_id"], pid)
        if method["source"] == "gift_card":
            method["balance"] = round(method["balance"] + payment["amount"], 2)
    order["status"] = "cancelled"
    order["cancel_reason"] = reason
    order["payment_history"].extend(refunds)
    return dump(order)


def exchange_delivered_order_items(db: Db, order_id: str, item_ids: list[str], new_item_ids: list[str],
                                   payment_method_id: str) -> str:
    """Exchange items in a delivered order to new items of the same product type. For a delivered order, return or exchange can be only done once by the agent. The agent needs to explain the exchange detail and ask for explicit user confirmation (yes/no) to proceed.

    Args:
        order_id: The order id, such as '#W0000000'. Be careful there is a '#' symbol at the beginning of the order id.
        item_ids: The item ids to be exchanged, each such as '1008292230'. There could be duplicate items in the list.
        new_item_ids: The item ids to be exchanged for, each such as '1008292230'. There could be duplicate items in the list. Each new item id should match the item id in the same position and be of the same product.
        payment_method_id: The payment method id to pay or receive refund for the item price difference, such as 'gift_card_0000000' or 'credit_card_0000000'. These can be looked up from the user or order details.
    """
    order = _order(db, order_id)
    if order["status"] != "delivered":
        raise TauToolError("Non-delivered order cannot be exchanged")
    _items_present(order, item_ids, "Number of {item_id} not found.")
    diff, _ = _price_difference(db, order, item_ids, new_item_ids, forbid_same=False)
    diff = round(diff, 2)
    method = _method(db, order["user_id"], payment_method_id)
    if method["source"] == "gift_card" and method["balance"] < diff:
        raise TauToolError("Insufficient gift card balance to pay for the price difference")
    order["status"] = "exchange requested"
    order["exchange_items"] = sorted(item_ids)
    order["exchange_new_items"] = sorted(new_item_ids)
    order["exchange_payment_method_id"] = payment_method_id
    order["exchange_price_difference"] = diff
    return dump(order)


def find_user_id_by_name_zip(db: Db, first_name: str, last_name: str, zip: str) -> str:
    """Find user id by first name, last name, and zip code. If the user is not found, the function will return an error message. By default, find user id by email, and only call this function if the user is not found by email or cannot remember email.

    Args:
        first_name: The first name of the customer, such as 'John'.
        last_name: The last name of the customer, such as 'Doe'.
        zip: The zip code of the customer, such as '12345'.
    """
    for user_id, user in db["users"].items():
        if (user["name"]["first_name"].lower() == first_name.lower()
                and user["name"]["last_name"].lower() == last_name.lower() and user["address"]["zip"] == zip):
            return str(user_id)
    raise TauToolError("User not found")


def find_user_id_by_email(db: Db, email: str) -> str:
    """Find user id by email. If the user is not found, the function will return an error message.

    Args:
        email: The email of the user, such as 'something@example.com'.
    """
    for user_id, user in db["users"].items():
        if user["email"].lower() == email.lower():
            return str(user_id)
    raise TauToolError("User not found")


def get_order_details(db: Db, order_id: str) -> str:
    """Get the status and details of an order.

    Args:
        order_id: The order id, such as '#W0000000'. Be careful there is a '#' symbol at the beginning of the order id.
    """
    return dump(_order(db, order_id))


def get_product_details(db: Db, product_id: str) -> str:
    """Get the inventory details of a product.

    Args:
        product_id: The product id, such as '6086499569'. Be careful the product id is different from the item id.
    """
    if product_id not in db["products"]:
        raise TauToolError("Product not found")
    return dump(db["products"][product_id])


def get_user_details(db: Db, user_id: str) -> str:
    """Get the details of a user, including their orders.

    Args:
        user_id: The user id, such as 'sara_doe_496'.
    """
    return dump(_user(db, user_id))


def list_all_product_types(db: Db) -> str:
    """List the name and product id of all product types. Each product type has a variety of different items with unique item ids and options. There are only 50 product types in the store."""
    return _json_sorted({p["name"]: p["product_id"] for p in db["products"].values()})


def _json_sorted(value: dict[str, str]) -> str:
    return dump(dict(sorted(value.items())))


def modify_pending_order_address(db: Db, order_id: str, address1: str, address2: str, city: str, state: str,
                                 country: str, zip: str) -> str:
    """Modify the shipping address of a pending order. The agent needs to explain the modification detail and ask for explicit user confirmation (yes/no) to proceed.

    Args:
        order_id: The order id, such as '#W0000000'. Be careful there is a '#' symbol at the beginning of the order id.
        address1: The first line of the address, such as '123 Main St'.
        address2: The second line of the address, such as 'Apt 1' or ''.
        city: The city, such as 'San Francisco'.
        state: The state, such as 'CA'.
        country: The country, such as 'USA'.
        zip: The zip code, such as '12345'.
    """
    order = _order(db, order_id)
    if "pending" not in order["status"]:
        raise TauToolError("Non-pending order cannot be modified")
    order["address"] = _address(address1, address2, city, state, country, zip)
    return dump(order)


def modify_pending_order_items(db: Db, order_id: str, item_ids: list[str], new_item_ids: list[str],
                               payment_method_id: str) -> str:
    """Modify items in a pending order to new items of the same product type. For a pending order, this function can only be called once. The agent needs to explain the exchange detail and ask for explicit user confirmation (yes/no) to proceed.

    Args:
        order_id: The order id, such as '#W0000000'. Be careful there is a '#' symbol at the beginning of the order id.
        item_ids: The item ids to be modified, each such as '1008292230'. There could be duplicate items in the list.
        new_item_ids: The item ids to be modified for, each such as '1008292230'. There could be duplicate items in the list. Each new item id should match the item id in the same position and be of the same product.
        payment_method_id: The payment method id to pay or receive refund for the item price difference, such as 'gift_card_0000000' or 'credit_card_0000000'. These can be looked up from the user or order details.
    """
    order = _order(db, order_id)
    if order["status"] != "pending":
        raise TauToolError("Non-pending order cannot be modified")
    _items_present(order, item_ids, "{item_id} not found")
    diff, variant = _price_difference(db, order, item_ids, new_item_ids, forbid_same=True)
    method = _method(db, order["user_id"], payment_method_id)
    if method["source"] == "gift_card" and method["balance"] < diff:
        raise TauToolError("Insufficient gift card balance to pay for the new item")
    order["payment_history"].append({"transaction_type": "payment" if diff > 0 else "refund",
                                     "amount": abs(diff), "payment_method_id": payment_method_id})
    if method["source"] == "gift_card":
        method["balance"] = round(method["balance"] - diff, 2)
    for item_id, new_id in zip(item_ids, new_item_ids, strict=True):
        item = next(i for i in order["items"] if i["item_id"] == item_id)
        assert variant is not None
        item["item_id"] = new_id
        item["price"] = variant["price"]
        item["options"] = dict(variant["options"])
    order["status"] = "pending (item modified)"
    return dump(order)


def modify_pending_order_payment(db: Db, order_id: str, payment_method_id: str) -> str:
    """Modify the payment method of a pending order. The agent needs to explain the modification detail and ask for explicit user confirmation (yes/no) to proceed.

    Args:
        order_id: The order id, such as '#W0000000'. Be careful there is a '#' symbol at the beginning of the order id.
        payment_method_id: The payment method id to pay or receive refund for the item price difference, such as 'gift_card_0000000' or 'credit_card_0000000'. These can be looked up from the user or order details.
    """
    order = _order(db, order_id)
    if "pending" not in order["status"]:
        raise TauToolError("Non-pending order cannot be modified")
    method = _method(db, order["user_id"], payment_method_id)
    history = order["payment_history"]
    if len(history) != 1 or history[0]["transaction_type"] != "payment":
        raise TauToolError("There should be exactly one payment for a pending order")
    old_id = history[0]["payment_method_id"]
    if old_id == payment_method_id:
        raise TauToolError("The new payment method should be different from the current one")
    amount = history[0]["amount"]
    if method["source"] == "gift_card" and method["balance"] < amount:
        raise TauToolError("Insufficient gift card balance to pay for the order")
    history.extend([{"transaction_type": "payment", "amount": amount, "payment_method_id": payment_method_id},
                    {"transaction_type": "refund", "amount": amount, "payment_method_id": old_id}])
    if method["source"] == "gift_card":
        method["balance"] = round(method["balance"] - amount, 2)
    old = _method(db, order["user_id"], old_id)
    if old["source"] == "gift_card":
        old["balance"] = round(old["balance"] + amount, 2)
    return dump(order)


def modify_user_address(db: Db, user_id: str, address1: str, address2: str, city: str, state: str, country: str,
                        zip: str) -> str:
    """Modify the default address of a user. The agent needs to explain the modification detail and ask for explicit user confirmation (yes/no) to proceed.

    Args:
        user_id: The user id, such as 'sara_doe_496'.
        address1: The first line of the address, such as '123 Main St'.
        address2: The second line of the address, such as 'Apt 1' or ''.
        city: The city, such as 'San Francisco'.
        state: The state, such as 'CA'.
        country: The country, such as 'USA'.
        zip: The zip code, such as '12345'.
    """
    user = _user(db, user_id)
    user["address"] = _address(address1, address2, city, state, country, zip)
    return dump(user)


def return_delivered_order_items(db: Db, order_id: str, item_ids: list[str], payment_method_id: str) -> str:
    """Return some items of a delivered order. The order status will be changed to 'return requested'. The agent needs to explain the return detail and ask for explicit user confirmation (yes/no) to proceed. The user will receive follow-up email for how and where to return the item.

    Args:
        order_id: The order id, such as '#W0000000'. Be careful there is a '#' symbol at the beginning of the order id.
        item_ids: The item ids to be returned, each such as '1008292230'. There could be duplicate items in the list.
        payment_method_id: The payment method id to pay or receive refund for the item price difference, such as 'gift_card_0000000' or 'credit_card_0000000'. These can be looked up from the user or order details.
    """
    order = _order(db, order_id)
    if order["status"] != "delivered":
        raise TauToolError("Non-delivered order cannot be returned")
    method = _method(db, order["user_id"], payment_method_id)
    if method["source"] != "gift_card" and payment_method_id != order["payment_history"][0]["payment_method_id"]:
        raise TauToolError("Payment method should be the original payment method")
    _items_present(order, item_ids, "Some item not found")
    order["status"] = "return requested"
    order["return_items"] = sorted(item_ids)
    order["return_payment_method_id"] = payment_method_id
    return dump(order)


TOOLS: dict[str, Callable[..., str]] = {f.__name__: f for f in (
    calculate, cancel_pending_order, exchange_delivered_order_items, find_user_id_by_name_zip,
    find_user_id_by_email, get_order_details, get_product_details, get_user_details, list_all_product_types,
    modify_pending_order_address, modify_pending_order_items, modify_pending_order_payment, modify_user_address,
    return_delivered_order_items, transfer_to_human_agents)}
WRITES = frozenset({"cancel_pending_order", "exchange_delivered_order_items", "modify_pending_order_address",
                    "modify_pending_order_items", "modify_pending_order_payment", "modify_user_address",
                    "return_delivered_order_items"})

__all__ = ["TOOLS", "WRITES"]
