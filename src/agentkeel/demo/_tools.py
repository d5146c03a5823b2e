"""The demo's travel tools and its scripted planning model: deterministic, no network.

The data is made up but shaped like real API answers, so chaos mode can corrupt
it and the executor's validation has something real to check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MODEL_NAME = "scripted-planner-1"


def _pseudo(*parts: object) -> int:
    """A stable number from the arguments, so every run of the demo agrees."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def weather(*, city: str, date: str) -> dict[str, Any]:
    n = _pseudo("weather", city, date)
    return {
        "city": city,
        "date": date,
        "forecast": ["sunny", "partly cloudy", "showers", "windy"][n % 4],
        "high_c": 17 + n % 9,
        "low_c": 10 + n % 5,
    }


def flights(*, origin: str, destination: str, date: str, passengers: int) -> dict[str, Any]:
    n = _pseudo("flights", origin, destination, date)
    price = 80 + n % 140
    return {
        "route": f"{origin}-{destination}",
        "date": date,
        "carrier": ["TP", "BA", "U2", "FR"][n % 4],
        "depart": f"{7 + n % 12:02d}:{(n // 7) % 60:02d}",
        "price_eur": price * passengers,
    }


def hotels(*, city: str, check_in: str, nights: int, guests: int) -> dict[str, Any]:
    n = _pseudo("hotels", city, check_in, nights)
    rate = 95 + n % 80
    return {
        "city": city,
        "hotel": ["Casa do Rio", "Hotel Alfama", "Baixa Suites", "Jardim Guesthouse"][n % 4],
        "nights": nights,
        "guests": guests,
        "total_eur": rate * nights,
    }


def currency(*, amount: float, source: str, target: str) -> dict[str, Any]:
    rates = {("EUR", "GBP"): 0.86, ("GBP", "EUR"): 1.16, ("EUR", "USD"): 1.08}
    rate = rates.get((source, target), 1.0)
    return {
        "amount": amount,
        "source": source,
        "target": target,
        "rate": rate,
        "converted": round(amount * rate, 2),
    }


def attractions(*, city: str, query: str) -> dict[str, Any]:
    n = _pseudo("attractions", city, query)
    sights = ["Belém Tower", "Alfama walk", "Gulbenkian Museum", "LX Factory", "Sintra day trip"]
    return {"city": city, "query": query, "top": [sights[(n + i) % len(sights)] for i in range(3)]}


TOOLS: dict[str, Callable[..., dict[str, Any]]] = {
    "weather": weather,
    "flights": flights,
    "hotels": hotels,
    "currency": currency,
}

# What a well-formed answer of each tool must contain; the executor checks it.
REQUIRED_KEYS: dict[str, frozenset[str]] = {
    "weather": frozenset({"city", "date", "forecast", "high_c"}),
    "flights": frozenset({"route", "carrier", "price_eur"}),
    "hotels": frozenset({"hotel", "total_eur"}),
    "currency": frozenset({"rate", "converted"}),
}


@dataclass(frozen=True, slots=True)
class TripRequest:
    origin: str = "LON"
    destination: str = "LIS"
    city: str = "Lisbon"
    start: dt.date = dt.date(2027, 5, 14)
    days: int = 3
    travellers: int = 2
    budget_eur: float = 1500.0
    home_currency: str = "GBP"


class ScriptedModel:
    """Stands in for an LLM: answers the planning prompt with a JSON tool plan."""

    name = MODEL_NAME

    def __init__(self, request: TripRequest) -> None:
        self.request = request

    def research_queries(self, *, confused: bool) -> list[str]:
        """What the model searches for sights; a confused model asks the same thing forever."""
        if confused:
            return [f"things to do in {self.request.city}"] * 12
        return [f"{topic} in {self.request.city}" for topic in ("museums", "viewpoints", "food")]

    def complete(self, prompt: str) -> str:
        r = self.request
        days = [(r.start + dt.timedelta(days=i)).isoformat() for i in range(r.days)]
        back = (r.start + dt.timedelta(days=r.days)).isoformat()
        calls: list[dict[str, Any]] = [
            {"tool": "weather", "args": {"city": r.city, "date": d}} for d in days
        ]
        calls += [
            {
                "tool": "flights",
                "args": {
                    "origin": r.origin,
                    "destination": r.destination,
                    "date": days[0],
                    "passengers": r.travellers,
                },
            },
            {
                "tool": "flights",
                "args": {
                    "origin": r.destination,
                    "destination": r.origin,
                    "date": back,
                    "passengers": r.travellers,
                },
            },
            {
                "tool": "hotels",
                "args": {
                    "city": r.city,
                    "check_in": days[0],
                    "nights": r.days,
                    "guests": r.travellers,
                },
            },
            {
                "tool": "currency",
                "args": {"amount": r.budget_eur, "source": "EUR", "target": r.home_currency},
            },
        ]
        return json.dumps({"thought": f"plan for: {prompt[:60]}", "calls": calls})


# Second sources the executor falls back to when a tool keeps failing: a cache of
# climate averages, a backup flight provider, a fixed rate table. Hotels have none,
# so a run can still show a blocked step.
def cached_weather(*, city: str, date: str) -> dict[str, Any]:
    return {
        "city": city,
        "date": date,
        "forecast": "unknown (climate average)",
        "high_c": 21,
        "low_c": 13,
        "source": "cache",
    }


def backup_flights(*, origin: str, destination: str, date: str, passengers: int) -> dict[str, Any]:
    quote = flights(origin=origin, destination=destination, date=date, passengers=passengers)
    return {
        **quote,
        "carrier": "backup-air",
        "price_eur": round(quote["price_eur"] * 1.15),
        "source": "backup provider",
    }


def fixed_rates(*, amount: float, source: str, target: str) -> dict[str, Any]:
    return {**currency(amount=amount, source=source, target=target), "source": "fixed table"}


FALLBACKS: dict[str, tuple[str, Callable[..., dict[str, Any]]]] = {
    "weather": ("weather-cache", cached_weather),
    "flights": ("flights-backup", backup_flights),
    "currency": ("fixed-rates", fixed_rates),
}
