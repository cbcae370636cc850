import { fireEvent, render, screen } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { fieldOf, SchemaForm, type JsonSchema } from "./SchemaForm";

const schema: JsonSchema = {
  type: "object",
  required: ["ceiling"],
  properties: {
    ceiling: { type: "number", exclusiveMinimum: 0, description: "Values above this are anomalies." },
    premium: { type: "array", items: { type: "string" }, maxItems: 2 },
    mode: { type: "string", enum: ["fast", "exact"] },
    models: { type: "array", items: { type: "object", properties: { model: { type: "string" } } } },
  },
};

describe("SchemaForm", () => {
  it("shows the schema's errors next to their fields and sends nothing", () => {
    const submit = vi.fn();
    render(<SchemaForm schema={schema} initial={{}} onSubmit={submit} submitLabel="Save" />);
    fireEvent.change(screen.getByLabelText(/premium/), { target: { value: "a, b, c" } });
    fireEvent.change(screen.getByLabelText(/models/), { target: { value: "[{" } });
    fireEvent.click(screen.getByText("Save"));
    expect(submit).not.toHaveBeenCalled();
    expect(screen.getByText("ceiling is required.")).toBeTruthy();
    expect(screen.getByText("At most 2 items.")).toBeTruthy();
    expect(screen.getByText("Not valid JSON.")).toBeTruthy();
    fireEvent.change(screen.getByLabelText(/ceiling/), { target: { value: "-1" } });
    fireEvent.click(screen.getByText("Save"));
    expect(screen.getByText("More than 0.")).toBeTruthy();
  });

  it("sends a configuration of the right types", () => {
    const submit = vi.fn();
    render(<SchemaForm schema={schema} initial={{ mode: "fast" }} onSubmit={submit} submitLabel="Save" />);
    fireEvent.change(screen.getByLabelText(/ceiling/), { target: { value: "2.5" } });
    fireEvent.change(screen.getByLabelText(/premium/), { target: { value: "gpt-4o, o1" } });
    fireEvent.change(screen.getByLabelText(/models/), { target: { value: '[{"model": "x"}]' } });
    fireEvent.click(screen.getByText("Save"));
    expect(submit).toHaveBeenCalledWith({ ceiling: 2.5, premium: ["gpt-4o", "o1"], mode: "fast", models: [{ model: "x" }] });
  });

  it("shows the hub's verdict on a field", () => {
    render(<SchemaForm schema={schema} initial={{}} serverErrors={{ ceiling: "the plugin refused it" }} onSubmit={() => {}} submitLabel="Save" />);
    expect(screen.getByRole("alert").textContent).toBe("the plugin refused it");
  });

  it("maps the hub's parameter paths to fields", () => {
    expect(fieldOf("config/discounts/0/percent")).toBe("discounts");
    expect(fieldOf("plugins[1].config/models")).toBe("models");
    expect(fieldOf("grants")).toBe("grants");
    expect(fieldOf(undefined)).toBeUndefined();
  });
});
