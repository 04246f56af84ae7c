<?php
/**
 * The VarAI Magento module's widget block as a storefront page renders it, for the release's Phase 4 check:
 * the module's own block class (argv[1], Block/Widget.php from the published Composer package) renders its
 * own template (argv[2], view/frontend/templates/widget.phtml) on the Magento classes it extends and uses,
 * defined here as Magento documents them. stdin: the store's settings under varai_ai_discovery/widget/
 * (JSON, with the API key: never on the command line). Prints the block's HTML ('' when disabled).
 */

namespace Magento\Store\Model {
    interface ScopeInterface
    {
        public const SCOPE_STORE = 'store';
    }
}

namespace Magento\Framework\App\Config {
    interface ScopeConfigInterface
    {
        public function getValue($path, $scopeType = 'default', $scopeCode = null);

        public function isSetFlag($path, $scopeType = 'default', $scopeCode = null);
    }
}

namespace Magento\Framework {
    class Escaper
    {
        public function escapeHtmlAttr($string, $escapeSingleQuote = true)
        {
            return htmlspecialchars((string) $string, ENT_QUOTES | ENT_SUBSTITUTE | ENT_HTML5, 'UTF-8');
        }
    }
}

namespace Magento\Framework\View\Element {
    class Template
    {
        protected $_scopeConfig;
        private string $templateFile;

        public function __construct($scopeConfig, string $templateFile)
        {
            $this->_scopeConfig = $scopeConfig;
            $this->templateFile = $templateFile;
        }

        public function toHtml(): string
        {
            return $this->_toHtml();
        }

        protected function _toHtml(): string
        {
            $block = $this;
            $escaper = new \Magento\Framework\Escaper();
            ob_start();
            include $this->templateFile;
            return (string) ob_get_clean();
        }
    }
}

namespace {
    final class VaraiStoreConfig implements \Magento\Framework\App\Config\ScopeConfigInterface
    {
        private const PREFIX = 'varai_ai_discovery/widget/';

        public function __construct(private array $settings)
        {
        }

        public function getValue($path, $scopeType = 'default', $scopeCode = null)
        {
            return str_starts_with($path, self::PREFIX) ? ($this->settings[substr($path, strlen(self::PREFIX))] ?? null) : null;
        }

        public function isSetFlag($path, $scopeType = 'default', $scopeCode = null)
        {
            return (bool) $this->getValue($path, $scopeType, $scopeCode);
        }
    }

    require $argv[1];
    $settings = json_decode(stream_get_contents(STDIN), true);
    echo (new \VarAI\AIDiscovery\Block\Widget(new VaraiStoreConfig($settings), $argv[2]))->toHtml();
}
