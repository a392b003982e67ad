/**
 * Word lists for the synthetic demo data: administrative divisions (GB/T 2260 codes as in use in
 * 2024), common surnames and given-name characters, and parts of enterprise names.
 *
 * The division codes and court names are real places; every person and enterprise generated from
 * these lists is fictitious.
 */

export interface Region {
  /** GB/T 2260 county-level division code. */
  readonly code: string
  /** Prefecture-level city (or municipality) name. */
  readonly city: string
  /** District, county or county-level city name. */
  readonly county: string
}

/** Fujian first (the demo federation is a Fujian one), then a few other provinces. */
export const FUJIAN_REGIONS: readonly Region[] = [
  { code: '350102', city: '福州市', county: '鼓楼区' },
  { code: '350103', city: '福州市', county: '台江区' },
  { code: '350104', city: '福州市', county: '仓山区' },
  { code: '350105', city: '福州市', county: '马尾区' },
  { code: '350111', city: '福州市', county: '晋安区' },
  { code: '350112', city: '福州市', county: '长乐区' },
  { code: '350121', city: '福州市', county: '闽侯县' },
  { code: '350122', city: '福州市', county: '连江县' },
  { code: '350181', city: '福州市', county: '福清市' },
  { code: '350203', city: '厦门市', county: '思明区' },
  { code: '350205', city: '厦门市', county: '海沧区' },
  { code: '350206', city: '厦门市', county: '湖里区' },
  { code: '350211', city: '厦门市', county: '集美区' },
  { code: '350212', city: '厦门市', county: '同安区' },
  { code: '350213', city: '厦门市', county: '翔安区' },
  { code: '350302', city: '莆田市', county: '城厢区' },
  { code: '350303', city: '莆田市', county: '涵江区' },
  { code: '350322', city: '莆田市', county: '仙游县' },
  { code: '350404', city: '三明市', county: '三元区' },
  { code: '350481', city: '三明市', county: '永安市' },
  { code: '350502', city: '泉州市', county: '鲤城区' },
  { code: '350503', city: '泉州市', county: '丰泽区' },
  { code: '350504', city: '泉州市', county: '洛江区' },
  { code: '350521', city: '泉州市', county: '惠安县' },
  { code: '350581', city: '泉州市', county: '石狮市' },
  { code: '350582', city: '泉州市', county: '晋江市' },
  { code: '350583', city: '泉州市', county: '南安市' },
  { code: '350602', city: '漳州市', county: '芗城区' },
  { code: '350604', city: '漳州市', county: '龙海区' },
  { code: '350702', city: '南平市', county: '延平区' },
  { code: '350782', city: '南平市', county: '武夷山市' },
  { code: '350802', city: '龙岩市', county: '新罗区' },
  { code: '350902', city: '宁德市', county: '蕉城区' },
  { code: '350982', city: '宁德市', county: '福鼎市' },
]

export const OTHER_REGIONS: readonly Region[] = [
  { code: '110101', city: '北京市', county: '东城区' },
  { code: '110105', city: '北京市', county: '朝阳区' },
  { code: '110108', city: '北京市', county: '海淀区' },
  { code: '310101', city: '上海市', county: '黄浦区' },
  { code: '310104', city: '上海市', county: '徐汇区' },
  { code: '310115', city: '上海市', county: '浦东新区' },
  { code: '330106', city: '杭州市', county: '西湖区' },
  { code: '320102', city: '南京市', county: '玄武区' },
  { code: '360102', city: '南昌市', county: '东湖区' },
  { code: '440106', city: '广州市', county: '天河区' },
  { code: '440304', city: '深圳市', county: '福田区' },
  { code: '440305', city: '深圳市', county: '南山区' },
  { code: '430102', city: '长沙市', county: '芙蓉区' },
  { code: '510104', city: '成都市', county: '锦江区' },
  { code: '650102', city: '乌鲁木齐市', county: '天山区' },
]

/** Common surnames, most frequent first (weights fall off with rank). */
export const SURNAMES: readonly string[] = [
  '王', '李', '张', '刘', '陈', '杨', '黄', '赵', '吴', '周', '徐', '孙', '马', '朱', '胡', '郭', '何',
  '林', '高', '罗', '郑', '梁', '谢', '宋', '唐', '许', '韩', '冯', '邓', '曹', '彭', '曾', '肖', '田',
  '董', '袁', '潘', '于', '蒋', '蔡', '余', '杜', '叶', '程', '苏', '魏', '吕', '丁', '任', '沈', '姚',
  '卢', '姜', '崔', '钟', '谭', '陆', '汪', '范', '金', '石', '廖', '贾', '夏', '韦', '付', '方', '白',
  '邹', '孟', '熊', '秦', '邱', '江', '尹', '薛', '闫', '段', '雷', '侯', '龙', '史', '陶', '黎', '贺',
  '顾', '毛', '郝', '龚', '邵', '万', '钱', '严', '覃', '武', '戴', '莫', '孔', '向', '汤', '欧阳',
  '司马', '上官', '诸葛',
]

/** Characters common in given names. */
export const GIVEN_NAME_CHARS: readonly string[] = [
  '伟', '芳', '娜', '敏', '静', '丽', '强', '磊', '军', '洋', '勇', '艳', '杰', '娟', '涛', '明', '超',
  '秀', '霞', '平', '刚', '桂', '英', '华', '玉', '萍', '红', '建', '文', '辉', '力', '斌', '宇', '浩',
  '凯', '健', '俊', '帆', '帅', '旭', '宁', '龙', '林', '欣', '佳', '婷', '雪', '琳', '晨', '梓', '涵',
  '子', '轩', '博', '睿', '思', '怡', '悦', '鑫', '嘉', '泽', '瑞', '晗', '雨', '欢', '峰', '海', '波',
  '鹏', '飞', '振', '志', '国', '春', '燕', '梅', '兰', '清', '荣', '福', '晓', '晶', '丹', '璐', '颖',
  '昊', '然', '一', '诺', '安', '祥', '德', '成', '家', '金', '永', '慧', '倩', '婉', '宏', '毅', '锦',
]

/** Transliterated names with the middle-dot separator, as registered for Uyghur citizens. */
export const DOTTED_NAMES: readonly string[] = [
  '阿依古丽·买买提', '艾力·吐尔逊', '古丽娜尔·阿不都', '买买提·依明', '热依拉·艾海提', '努尔兰·托合提',
]

/** Brand-like words used in enterprise names (字号). */
export const TRADE_NAMES: readonly string[] = [
  '鑫源', '恒通', '华盛', '永兴', '宏达', '金海', '闽发', '海峡', '天成', '瑞丰', '盛世', '安泰', '嘉禾',
  '新锐', '博远', '联创', '汇丰源', '东南', '鼎盛', '佳美', '万家', '中闽', '福龙', '星辰', '蓝海', '晨光',
  '正泰', '顺达', '利民', '同心', '远航', '腾飞', '康宁', '益佳', '明德', '信诚', '榕城', '鹭岛', '泉心',
]

/** Industry phrases (行业) for companies. */
export const INDUSTRIES: readonly string[] = [
  '贸易', '科技', '网络科技', '电子商务', '建筑工程', '物流', '食品', '茶业', '鞋业', '服装', '机械设备',
  '信息技术', '房地产开发', '餐饮管理', '医药', '文化传媒', '新能源', '水产', '石材', '家具', '陶瓷',
]

/** Shop kinds for individual businesses (个体工商户). */
export const SHOP_KINDS: readonly string[] = ['小吃店', '便利店', '五金店', '茶行', '服装店', '理发店', '水果店', '汽车修理部']

/** Products of farmers' cooperatives. */
export const COOP_PRODUCTS: readonly string[] = ['茶叶', '果蔬', '食用菌', '水产养殖', '花卉', '畜禽养殖']
