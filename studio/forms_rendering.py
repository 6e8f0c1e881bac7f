"""The form renderer every form of the studio uses: one field layout, one look.

``{{ form }}`` and ``{{ field.as_field_group }}`` render through ``studio/forms/div.html`` and
``studio/forms/field.html``: a checkbox sits before its label on one line, a group of radios or
checkboxes is a fieldset with a legend, every other field is a label above its input, then its
help text and errors. The templates are looked up through ``TEMPLATES`` (with ``django.forms``
installed for the widgets' own templates), so a page may still override one.
"""

from __future__ import annotations

from django.forms.renderers import TemplatesSetting


class StudioFormRenderer(TemplatesSetting):
    form_template_name = "studio/forms/div.html"
    field_template_name = "studio/forms/field.html"
