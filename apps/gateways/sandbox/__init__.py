"""The sandbox bank: a pretend bank behind real HTTP, whose behaviour is chosen by the last four
digits of the destination account (DESIGN.md, "Sandbox bank — contract")."""
