// The labeling page's entry (a file, not an inline script: the Content-Security-Policy allows no inline code).
import { mountLabeling } from "./label.js";

mountLabeling(document.querySelector("[data-labeling]"));
