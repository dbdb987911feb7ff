"""Real programs and servers that stand in for agents and model providers in the tests."""
