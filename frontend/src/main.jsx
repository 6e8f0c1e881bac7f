// Mounts the canvas island on the editor page; everything it needs is in the page's
// `editor-data` JSON (rendered by the server with json_script).
import { createRoot } from "react-dom/client";

import "@xyflow/react/dist/style.css";
import "./styles.css";
import { Editor } from "./Editor.jsx";

function mount() {
  const element = document.getElementById("flow-editor");
  const source = document.getElementById("editor-data");
  if (!element || !source) return;
  const data = JSON.parse(source.textContent);
  createRoot(element).render(<Editor data={data} />);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
else mount();
