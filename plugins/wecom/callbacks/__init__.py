"""Two-way WeCom: the callback receiver, its envelope and its inbox."""
