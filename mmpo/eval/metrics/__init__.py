"""Pure metric functions of the benchmarks ``mmpo eval`` scores: lists of answers in, figures out."""
