"""kopf handlers of ``DecisionService`` (registered by importing ``handlers``)."""
