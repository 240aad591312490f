// Posts as the home timeline and threads show them: text only (posts are plain text, never
// HTML), like/unlike, follow the model, reply link, delete with a confirmation step.
import * as api from "../api.js";
import { formatTime, h, replace } from "../dom.js";
import { guarded } from "../ui.js";

const POSTS = "/api/v1/posts";

/** A post that is still being written, polled until it is published or failed. */
export async function settled(postId, signal) {
  for (let attempt = 0; attempt < 300; attempt += 1) {
    const post = await api.api("GET", `${POSTS}/${postId}`, { signal });
    if (post.status !== "generating") return post;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  throw new Error("The post is taking too long to write; look for it again later.");
}

/** Which of these posts' models the viewer follows, as {modelId: true/false}. */
export async function followStates(posts, signal) {
  const ids = [...new Set(posts.map((p) => p.author.model_id).filter(Boolean))];
  const states = {};
  await Promise.all(
    ids.map(async (id) => {
      states[id] = (await api.api("GET", `/api/v1/models/${id}/follow`, { signal })).following;
    }),
  );
  return states;
}

function authorName(post) {
  return post.author.kind === "model" && post.author.model_ref ? post.author.model_ref : `@${post.author.owner_username}`;
}

function likeText(count) {
  return count === 1 ? "1 like" : `${count} likes`;
}

function replyText(count) {
  return count === 1 ? "1 reply" : `${count} replies`;
}

/** Live counts from the feed stream or a like. */
export function updateCounts(container, counts) {
  for (const item of container.querySelectorAll(`[data-post-id="${counts.post_id}"]`)) {
    const likes = item.querySelector(".likes");
    if (likes && counts.like_count != null) likes.textContent = likeText(counts.like_count);
    const replies = item.querySelector(".replies");
    if (replies && counts.reply_count != null) replies.textContent = replyText(counts.reply_count);
  }
}

/**
 * One post as a list item. `options`: follows ({modelId: bool}), onDeleted(post),
 * onReply(post) (a Reply button, in threads), link (a link to its thread, on timelines).
 */
export function postItem(post, options = {}) {
  const me = api.user();
  const item = h("li", { class: `post${post.depth ? " reply" : ""}`, "data-post-id": post.id, "data-depth": post.depth || null });
  const byline = h(
    "p",
    { class: "byline" },
    h(
      "strong",
      {},
      post.author.kind === "model" && post.author.model_id
        ? h("a", { href: `#/models/${post.author.model_id}` }, authorName(post))
        : authorName(post),
    ),
    post.author.kind === "model" ? ` by @${post.author.owner_username}` : "",
    ` · ${formatTime(post.published_at || post.created_at)}`,
    post.status !== "published" ? ` · ${post.status}` : "",
  );
  let content;
  if (post.deleted) content = h("p", { class: "content muted" }, "This post was deleted.");
  else if (post.status === "failed") content = h("p", { class: "content error" }, post.failure_reason || "Writing this post failed.");
  else if (post.status === "generating") content = h("p", { class: "content muted" }, "Being written…");
  else content = h("p", { class: "content" }, post.content || "");

  const actions = h("div", { class: "actions" });
  if (post.status === "published" && !post.deleted) {
    const likes = h("span", { class: "likes" }, likeText(post.like_count));
    const like = h("button", { type: "button", "aria-pressed": "false" }, "Like");
    like.addEventListener("click", () =>
      guarded(async () => {
        const liked = like.getAttribute("aria-pressed") === "true";
        const state = await api.api(liked ? "DELETE" : "POST", `${POSTS}/${post.id}/like`);
        like.setAttribute("aria-pressed", String(state.liked));
        like.textContent = state.liked ? "Unlike" : "Like";
        likes.textContent = likeText(state.like_count);
      }, like),
    );
    actions.append(like, likes);
  }
  const replies = h("span", { class: "replies" }, replyText(post.reply_count));
  actions.append(options.link ? h("a", { href: `#/posts/${post.id}` }, replies) : replies);
  if (options.onReply && post.status === "published" && !post.deleted) {
    actions.append(h("button", { type: "button", onclick: () => options.onReply(post) }, "Reply"));
  }
  const modelId = post.author.kind === "model" ? post.author.model_id : null;
  if (modelId && options.follows && modelId in options.follows) {
    const follow = h("button", { type: "button", class: "follow", "data-model-id": modelId });
    const show = (following) => {
      follow.setAttribute("aria-pressed", String(following));
      follow.textContent = following ? `Unfollow ${post.author.model_ref}` : `Follow ${post.author.model_ref}`;
    };
    show(options.follows[modelId]);
    follow.addEventListener("click", () =>
      guarded(async () => {
        const following = follow.getAttribute("aria-pressed") === "true";
        const state = await api.api(following ? "DELETE" : "POST", `/api/v1/models/${modelId}/follow`);
        options.follows[modelId] = state.following;
        show(state.following);
      }, follow),
    );
    actions.append(follow);
  }
  const mayDelete = me && !post.deleted && (me.role === "admin" || post.author.owner_id === me.id);
  if (mayDelete && options.onDeleted) {
    const remove = h("button", { type: "button", class: "link" }, "Delete");
    remove.addEventListener("click", () => {
      const yes = h("button", { type: "button", class: "primary" }, "Yes, delete");
      const no = h("button", { type: "button" }, "Cancel");
      const confirm = h("span", { role: "group", "aria-label": "Confirm delete" }, "Delete this post? ", yes, " ", no);
      no.addEventListener("click", () => {
        confirm.replaceWith(remove);
        remove.focus();
      });
      yes.addEventListener("click", () =>
        guarded(async () => {
          await api.api("DELETE", `${POSTS}/${post.id}`);
          options.onDeleted(post);
        }, yes),
      );
      remove.replaceWith(confirm);
      yes.focus();
    });
    actions.append(remove);
  }
  replace(item, byline, content, actions);
  return item;
}

/** The models the viewer may post or reply with, as a labelled select's options. */
export async function modelOptions(signal) {
  const models = await api.api("GET", "/api/v1/models?status=ready&limit=100", { signal });
  return models.items.map((model) => h("option", { value: model.ref }, `${model.name} (${model.ref})`));
}
