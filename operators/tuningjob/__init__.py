"""kopf handlers of ``TuningJob`` (registered by importing ``handlers``)."""
