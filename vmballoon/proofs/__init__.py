"""Z3 proofs of the driver's properties over the symbolic encoding of the model."""
