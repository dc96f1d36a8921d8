// The review page's entry (a file, not an inline script: the Content-Security-Policy allows no inline code).
import { mountReview } from "./review.js";

mountReview(document.querySelector("[data-reviewing]"));
