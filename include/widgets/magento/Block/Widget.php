<?php
/**
 * VarAI AI Discovery for Magento 2.
 */
declare(strict_types=1);

namespace VarAI\AIDiscovery\Block;

use Magento\Framework\App\Config\ScopeConfigInterface;
use Magento\Framework\View\Element\Template;
use Magento\Store\Model\ScopeInterface;

/**
 * The storefront placeholder the widget script (view/frontend/web/js/varai-widget.js) turns into the widget.
 */
class Widget extends Template
{
    private const XML_PATH = 'varai_ai_discovery/widget/';
    private const DEFAULT_API_BASE = 'https://api.varai.ai';
    private const DEFAULT_LABEL = 'Find your frames';

    public function isEnabled(): bool
    {
        return $this->_scopeConfig->isSetFlag(self::XML_PATH . 'enabled', ScopeInterface::SCOPE_STORE)
            && $this->getApiKey() !== '';
    }

    public function getApiKey(): string
    {
        return trim((string) $this->getValue('api_key'));
    }

    public function getApiBase(): string
    {
        $base = rtrim(trim((string) $this->getValue('api_base')), '/');
        return $base !== '' ? $base : self::DEFAULT_API_BASE;
    }

    public function getLabel(): string
    {
        $label = trim((string) $this->getValue('label'));
        return $label !== '' ? $label : self::DEFAULT_LABEL;
    }

    protected function _toHtml(): string
    {
        return $this->isEnabled() ? parent::_toHtml() : '';
    }

    private function getValue(string $field): mixed
    {
        return $this->_scopeConfig->getValue(self::XML_PATH . $field, ScopeInterface::SCOPE_STORE);
    }
}
