"""An LSTM encoder with a direct multi-horizon quantile (or point) head."""
