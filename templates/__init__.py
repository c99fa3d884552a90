"""Ready-made flows, one module per connection type; ALL lists every template."""

ALL: tuple = ()
