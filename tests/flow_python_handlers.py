"""A programmer's Python handler for a flow function (tests/fixtures/flows_runtime/shop.yaml)."""

from pipecat.flows.types import TRANSITION_IN_YAML


async def price_of(flow_manager, item: str):
    """The price of an item.

    Args:
        item: what the caller wants to buy
    """
    flow_manager.state["priced"] = item  # flow state is the session's room state
    return {"item": item, "price": 3}, TRANSITION_IN_YAML
