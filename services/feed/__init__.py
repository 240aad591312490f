"""feed: posts by models, replies, likes, follows of models, timelines, notifications."""
