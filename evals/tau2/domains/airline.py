"""τ²-bench's airline domain: users, flights and reservations, and the tools an agent changes them
with. Re-implemented from the domain's policy and data (semantics follow τ²-bench's tools: fixed new
ids ``HATHAT``/``HATHAU``/``HATHAV``, certificates ``certificate_3221322``..., the clock at
2024-05-15 15:00 EST)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from troupe.evals.tau2.domains.common import Db, TauToolError, calculate, dump, transfer_to_human_agents

NOW = "2024-05-15T15:00:00"
AIRPORTS = [("SFO", "San Francisco"), ("JFK", "New York"), ("LAX", "Los Angeles"), ("ORD", "Chicago"),
            ("DFW", "Dallas"), ("DEN", "Denver"), ("SEA", "Seattle"), ("ATL", "Atlanta"), ("MIA", "Miami"),
            ("BOS", "Boston"), ("PHX", "Phoenix"), ("IAH", "Houston"), ("LAS", "Las Vegas"),
            ("MCO", "Orlando"), ("EWR", "Newark"), ("CLT", "Charlotte"), ("MSP", "Minneapolis"),
            ("DTW", "Detroit"), ("PHL", "Philadelphia"), ("LGA", "LaGuardia")]


def _user(db: Db, user_id: str) -> dict[str, Any]:
    if user_id not in db["users"]:
        raise TauToolError(f"User {user_id} not found")
    return db["users"][user_id]


def _reservation(db: Db, reservation_id: str) -> dict[str, Any]:
    if reservation_id not in db["reservations"]:
        raise TauToolError(f"Reservation {reservation_id} not found")
    return db["reservations"][reservation_id]


def _flight(db: Db, flight_number: str) -> dict[str, Any]:
    if flight_number not in db["flights"]:
        raise TauToolError(f"Flight {flight_number} not found")
    return db["flights"][flight_number]


def _instance(db: Db, flight_number: str, date: str) -> dict[str, Any]:
    flight = _flight(db, flight_number)
    if date not in flight["dates"]:
        raise TauToolError(f"Flight {flight_number} not found on date {date}")
    return flight["dates"][date]


def _shown(reservation: dict[str, Any]) -> str:
    return dump({**reservation, "status": reservation.get("status")})


def _passengers(passengers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    try:
        return [{"first_name": p["first_name"], "last_name": p["last_name"], "dob": p["dob"]} for p in passengers]
    except (KeyError, TypeError) as e:
        raise TauToolError(f"Each passenger needs first_name, last_name and dob ({e})") from e


def _direct(db: Db, date: str, origin: str | None, destination: str | None,
            leave_after: str | None = None) -> list[dict[str, Any]]:
    found = []
    for f in db["flights"].values():
        day = f["dates"].get(date)
        if (day is None or day["status"] != "available" or (origin is not None and f["origin"] != origin)
                or (destination is not None and f["destination"] != destination)
                or (leave_after is not None and f["scheduled_departure_time_est"] < leave_after)):
            continue
        found.append({"flight_number": f["flight_number"], "origin": f["origin"], "destination": f["destination"],
                      "status": "available", "scheduled_departure_time_est": f["scheduled_departure_time_est"],
                      "scheduled_arrival_time_est": f["scheduled_arrival_time_est"], "date": None,
                      "available_seats": day["available_seats"], "prices": day["prices"]})
    return found


def _pay_update(user: dict[str, Any], payment_id: str, total: float) -> dict[str, Any] | None:
    if payment_id not in user["payment_methods"]:
        raise TauToolError("Payment method not found")
    method = user["payment_methods"][payment_id]
    if method["source"] == "certificate":
        raise TauToolError("Certificate cannot be used to update reservation")
    if method["source"] == "gift_card" and method["amount"] < total:
        raise TauToolError("Gift card balance is not enough")
    if method["source"] == "gift_card":
        method["amount"] -= total
    return {"payment_id": payment_id, "amount": total} if total != 0 else None


def book_reservation(db: Db, user_id: str, origin: str, destination: str, flight_type: str, cabin: str,
                     flights: list[dict[str, Any]], passengers: list[dict[str, Any]],
                     payment_methods: list[dict[str, Any]], total_baggages: int, nonfree_baggages: int,
                     insurance: str) -> str:
    """Book a reservation.

    Args:
        user_id: The ID of the user to book the reservation such as 'sara_doe_496'.
        origin: The IATA code for the origin city such as 'SFO'.
        destination: The IATA code for the destination city such as 'JFK'.
        flight_type: The type of flight such as 'one_way' or 'round_trip'.
        cabin: The cabin class such as 'basic_economy', 'economy', or 'business'.
        flights: An array of objects containing details about each piece of flight. Example: [{"flight_number": "HAT001", "date": "2024-05-01"}].
        passengers: An array of objects containing details about each passenger. Example: [{"first_name": "John", "last_name": "Doe", "dob": "1990-01-01"}].
        payment_methods: An array of objects containing details about each payment method. Example: [{"payment_id": "gift_card_3576581", "amount": 4986}].
        total_baggages: The total number of baggage items to book the reservation.
        nonfree_baggages: The number of non-free baggage items to book the reservation.
        insurance: Whether the reservation has insurance: 'yes' or 'no'.
    """
    user = _user(db, user_id)
    reservation_id = next((r for r in ("HATHAT", "HATHAU", "HATHAV") if r not in db["reservations"]), None)
    if reservation_id is None:
        raise TauToolError("Too many reservations")
    people = _passengers(passengers)
    payments = [{"payment_id": p["payment_id"], "amount": p["amount"]} for p in payment_methods]
    legs, days, total = [], [], 0.0
    for info in flights:
        number, date = info["flight_number"], info["date"]
        flight, day = _flight(db, number), _instance(db, number, date)
        if day["status"] != "available":
            raise TauToolError(f"Flight {number} not available on date {date}")
        if day["available_seats"][cabin] < len(people):
            raise TauToolError(f"Not enough seats on flight {number}")
        price = day["prices"][cabin]
        legs.append({"origin": flight["origin"], "destination": flight["destination"], "flight_number": number,
                     "date": date, "price": price})
        days.append(day)
        total += price * len(people)
    if insurance == "yes":
        total += 30 * len(people)
    total += 50 * nonfree_baggages
    for p in payments:
        if p["payment_id"] not in user["payment_methods"]:
            raise TauToolError(f"Payment method {p['payment_id']} not found")
        method = user["payment_methods"][p["payment_id"]]
        if method["source"] in ("gift_card", "certificate") and method["amount"] < p["amount"]:
            raise TauToolError(f"Not enough balance in payment method {p['payment_id']}")
    paid = sum(p["amount"] for p in payments)
    if paid != total:
        raise TauToolError(f"Payment amount does not add up, total price is {total:g}, but paid {paid:g}")
    for p in payments:
        method = user["payment_methods"][p["payment_id"]]
        if method["source"] == "gift_card":
            method["amount"] -= p["amount"]
        elif method["source"] == "certificate":
            user["payment_methods"].pop(p["payment_id"])
    for day in days:
        day["available_seats"][cabin] -= len(people)
    reservation = {"reservation_id": reservation_id, "user_id": user_id, "origin": origin,
                   "destination": destination, "flight_type": flight_type, "cabin": cabin, "flights": legs,
                   "passengers": people, "payment_history": payments, "created_at": NOW,
                   "total_baggages": total_baggages, "nonfree_baggages": nonfree_baggages, "insurance": insurance}
    db["reservations"][reservation_id] = reservation
    user["reservations"].append(reservation_id)
    return _shown(reservation)


def cancel_reservation(db: Db, reservation_id: str) -> str:
    """Cancel the whole reservation.

    Args:
        reservation_id: The reservation ID, such as 'ZFA04Y'.
    """
    reservation = _reservation(db, reservation_id)
    refunds = [{"payment_id": p["payment_id"], "amount": -p["amount"]} for p in reservation["payment_history"]]
    reservation["payment_history"].extend(refunds)
    reservation["status"] = "cancelled"
    return _shown(reservation)


def get_reservation_details(db: Db, reservation_id: str) -> str:
    """Get the details of a reservation.

    Args:
        reservation_id: The reservation ID, such as '8JX2WO'.
    """
    return _shown(_reservation(db, reservation_id))


def get_user_details(db: Db, user_id: str) -> str:
    """Get the details of a user, including their reservations.

    Args:
        user_id: The user ID, such as 'sara_doe_496'.
    """
    return dump(_user(db, user_id))


def list_all_airports(db: Db) -> str:
    """Returns a list of all available airports."""
    return dump([{"iata": code, "city": city} for code, city in AIRPORTS])


def search_direct_flight(db: Db, origin: str, destination: str, date: str) -> str:
    """Search for direct flights between two cities on a specific date.

    Args:
        origin: The origin city airport in three letters, such as 'JFK'.
        destination: The destination city airport in three letters, such as 'LAX'.
        date: The date of the flight in the format 'YYYY-MM-DD', such as '2024-01-01'.
    """
    return dump(_direct(db, date, origin, destination))


def search_onestop_flight(db: Db, origin: str, destination: str, date: str) -> str:
    """Search for one-stop flights between two cities on a specific date.

    Args:
        origin: The origin city airport in three letters, such as 'JFK'.
        destination: The destination city airport in three letters, such as 'LAX'.
        date: The date of the flight in the format 'YYYY-MM-DD', such as '2024-05-01'.
    """
    pairs = []
    for first in _direct(db, date, origin, None):
        first["date"] = date
        date2 = f"2024-05-{int(date[-2:]) + 1}" if "+1" in first["scheduled_arrival_time_est"] else date
        for second in _direct(db, date2, first["destination"], destination, first["scheduled_arrival_time_est"]):
            second["date"] = date2
            pairs.append([first, second])
    return dump(pairs)


def send_certificate(db: Db, user_id: str, amount: int) -> str:
    """Send a certificate to a user. Be careful!

    Args:
        user_id: The ID of the user to send the certificate to, such as 'sara_doe_496'.
        amount: The amount of the certificate to send.
    """
    user = _user(db, user_id)
    for number in (3221322, 3221323, 3221324):
        payment_id = f"certificate_{number}"
        if payment_id not in user["payment_methods"]:
            user["payment_methods"][payment_id] = {"source": "certificate", "id": payment_id, "amount": amount}
            return f"Certificate {payment_id} added to user {user_id} with amount {amount}."
    raise TauToolError("Too many certificates")


def update_reservation_baggages(db: Db, reservation_id: str, total_baggages: int, nonfree_baggages: int,
                                payment_id: str) -> str:
    """Update the baggage information of a reservation.

    Args:
        reservation_id: The reservation ID, such as 'ZFA04Y'.
        total_baggages: The updated total number of baggage items included in the reservation.
        nonfree_baggages: The updated number of non-free baggage items included in the reservation.
        payment_id: The payment id stored in user profile, such as 'credit_card_7815826', 'gift_card_7815826', 'certificate_7815826'.
    """
    reservation = _reservation(db, reservation_id)
    user = _user(db, reservation["user_id"])
    payment = _pay_update(user, payment_id, 50 * max(0, nonfree_baggages - reservation["nonfree_baggages"]))
    if payment is not None:
        reservation["payment_history"].append(payment)
    reservation["total_baggages"] = total_baggages
    reservation["nonfree_baggages"] = nonfree_baggages
    return _shown(reservation)


def update_reservation_flights(db: Db, reservation_id: str, cabin: str, flights: list[dict[str, Any]],
                               payment_id: str) -> str:
    """Update the flight information of a reservation.

    Args:
        reservation_id: The reservation ID, such as 'ZFA04Y'.
        cabin: The cabin class of the reservation.
        flights: An array of objects containing details about each piece of flight in the ENTIRE new reservation. Even if the a flight segment is not changed, it should still be included in the array. For example: [{"flight_number": "HAT001", "date": "2024-05-01"}].
        payment_id: The payment id stored in user profile, such as 'credit_card_7815826', 'gift_card_7815826', 'certificate_7815826'.
    """
    reservation = _reservation(db, reservation_id)
    user = _user(db, reservation["user_id"])
    count = len(reservation["passengers"])
    legs, total = [], 0.0
    for info in flights:
        number, date = info["flight_number"], info["date"]
        kept = next((f for f in reservation["flights"] if f["flight_number"] == number and f["date"] == date
                     and cabin == reservation["cabin"]), None)
        if kept is not None:
            total += kept["price"] * count
            legs.append(kept)
            continue
        flight, day = _flight(db, number), _instance(db, number, date)
        if day["status"] != "available":
            raise TauToolError(f"Flight {number} not available on date {date}")
        if day["available_seats"][cabin] < count:
            raise TauToolError(f"Not enough seats on flight {number}")
        leg = {"origin": flight["origin"], "destination": flight["destination"], "flight_number": number,
               "date": date, "price": day["prices"][cabin]}
        total += leg["price"] * count
        legs.append(leg)
    total -= sum(f["price"] for f in reservation["flights"]) * count
    payment = _pay_update(user, payment_id, total)
    if payment is not None:
        reservation["payment_history"].append(payment)
    reservation["flights"] = copy.deepcopy(legs)
    reservation["cabin"] = cabin
    return _shown(reservation)


def update_reservation_passengers(db: Db, reservation_id: str, passengers: list[dict[str, Any]]) -> str:
    """Update the passenger information of a reservation.

    Args:
        reservation_id: The reservation ID, such as 'ZFA04Y'.
        passengers: An array of objects containing details about each passenger. For example: [{"first_name": "Amelia", "last_name": "Ahmed", "dob": "1957-03-21"}].
    """
    reservation = _reservation(db, reservation_id)
    people = _passengers(passengers)
    if len(people) != len(reservation["passengers"]):
        raise TauToolError("Number of passengers does not match")
    reservation["passengers"] = people
    return _shown(reservation)


def get_flight_status(db: Db, flight_number: str, date: str) -> str:
    """Get the status of a flight.

    Args:
        flight_number: The flight number.
        date: The date of the flight.
    """
    return str(_instance(db, flight_number, date)["status"])


TOOLS: dict[str, Callable[..., str]] = {f.__name__: f for f in (
    book_reservation, calculate, cancel_reservation, get_flight_status, get_reservation_details,
    get_user_details, list_all_airports, search_direct_flight, search_onestop_flight, send_certificate,
    transfer_to_human_agents, update_reservation_baggages, update_reservation_flights,
    update_reservation_passengers)}
WRITES = frozenset({"book_reservation", "cancel_reservation", "send_certificate", "update_reservation_baggages",
                    "update_reservation_flights", "update_reservation_passengers"})

__all__ = ["TOOLS", "WRITES"]
