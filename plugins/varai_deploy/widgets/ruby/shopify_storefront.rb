# The Shopify app block's markup as a live storefront renders it, with Shopify's own Liquid (the liquid gem).
#
#   ruby shopify_storefront.rb <blocks/varai_discovery.liquid>   < {"settings": {...}, "assets": {"widget.js": url}}
#
# Shopify's additions are defined as its theme documentation describes them: the {% schema %} tag renders
# nothing, and a setting the merchant left alone has its schema default (a text setting without one is
# blank); `asset_url` gives an asset's URL (here where the release published it); on a live storefront
# `block.shopify_attributes` is empty and `request.design_mode` false; values answer `blank?` as on Shopify's
# Rails runtime (nil and whitespace-only strings are blank), which `!= blank` relies on. Parsing and rendering
# are strict: an unknown tag, filter or variable fails the render instead of vanishing from the page.
require "json"
require "liquid"

class NilClass
  def blank? = true
end

class String
  def blank? = strip.empty?
end

class Schema < Liquid::Raw
  def render_to_output_buffer(_context, output)
    output
  end
end
Liquid::Template.register_tag("schema", Schema)

module ShopifyFilters
  def asset_url(name)
    assets = @context.registers[:assets]
    assets.fetch(name) { raise Liquid::ArgumentError, "asset_url: #{name} is not an asset this release published" }
  end
end

input = JSON.parse($stdin.read)
source = File.read(ARGV.fetch(0))
schema = JSON.parse(source[/\{%-?\s*schema\s*-?%\}(.*?)\{%-?\s*endschema\s*-?%\}/m, 1] || "{}")
defaults = (schema["settings"] || []).to_h { |setting| [setting["id"], setting.fetch("default", nil)] }
settings = defaults.merge(input.fetch("settings"))
begin
  template = Liquid::Template.parse(source, error_mode: :strict)
  page = template.render!(
    {
      "block" => { "id" => "varai", "settings" => settings, "shopify_attributes" => "" },
      "request" => { "design_mode" => false },
    },
    filters: [ShopifyFilters],
    registers: { assets: input.fetch("assets") },
    strict_variables: true,
    strict_filters: true,
  )
rescue Liquid::Error => e
  abort e.message
end
print page
